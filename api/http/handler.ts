/**
 * Routes of the service core, transport-neutral: authentication, body checks, validation,
 * the engine call, the response, one log line and the metrics. Express and the Lambda handlers
 * pass requests here unchanged, so every rule holds on both.
 *
 * Order of checks on POST routes: API key (401), role (403), content type (415), size (413),
 * JSON (400), shape (400), context scope (403), values (400).
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { SignInRejected } from '../auth/directory.ts';
import { authorize, type Principal, type Role } from '../auth/roles.ts';
import type { Nullable } from '../engine/engine.ts';
import { AuthError, DirectoryError, errorMessage, PlatformError, RequestError, ThrottledError, type ItemProblem } from '../errors.ts';
import type { PseudonymizationService } from '../service.ts';
import { viewOf } from '../erasure/requests.ts';
import { problemResponse } from './problem.ts';
import type { CoreRequest, CoreResponse } from './types.ts';

interface RouteContext {
  readonly service: PseudonymizationService;
  readonly request: CoreRequest;
  readonly requestId: string;
  /** Path parameters of a templated route, e.g. {id}. */
  readonly params: Readonly<Record<string, string>>;
  /** Values handled, for the log line and metrics. */
  valueCount: number;
  principal?: Principal;
  /** The context a batch route worked on, for the audit entry. */
  contextName?: string;
}

interface Route {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly handler: (context: RouteContext) => Promise<CoreResponse> | CoreResponse;
}

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8' };

function json(status: number, body: unknown): CoreResponse {
  return { status, headers: { ...JSON_HEADERS }, body: JSON.stringify(body) };
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });
const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * A message from the first schema issue, built from its code and our schema's path only: zod's own
 * wording can quote the caller's input (an unknown field's name, say), which may be personal data.
 */
function shapeError(error: z.ZodError): RequestError {
  const issue = error.issues[0];
  const where = issue && issue.path.length > 0 ? issue.path.join('.') : 'body';
  let rule = 'is not valid';
  if (issue?.code === 'invalid_type') rule = `must be ${issue.expected === 'object' ? 'a JSON object' : `a ${issue.expected}`}`;
  else if (issue?.code === 'unrecognized_keys') rule = 'has fields this operation does not take';
  else if (issue?.code === 'too_small') rule = 'is too small';
  return new RequestError('validation-failed', `${where}: ${rule}`);
}

/** A person's session token (Authorization: Bearer) or a machine's API key (x-api-key); then the role. */
async function authenticate(context: RouteContext, role: Role): Promise<Principal> {
  const { headers } = context.request;
  const bearer = /^Bearer\s+(\S+)$/i.exec(headers.authorization ?? '');
  const principal = bearer ? await context.service.sessions.verify(bearer[1]!) : await context.service.authenticator.authenticate(headers['x-api-key']);
  context.principal = principal;
  authorize(principal, role);
  return principal;
}

/** Runs a reidentify route and writes its audit entry: success, denied (401/403) or failure. */
async function audited(context: RouteContext, run: () => Promise<CoreResponse>): Promise<CoreResponse> {
  const { service, request } = context;
  const entry = () => ({
    action: 'reidentify' as const,
    actor: context.principal ? { kind: context.principal.kind, id: context.principal.id } : { kind: 'anonymous' as const },
    requestId: context.requestId,
    clientAddress: request.clientAddress,
    context: context.contextName,
    count: context.valueCount,
  });
  try {
    const response = await run();
    service.audit.record({ ...entry(), outcome: 'success' });
    return response;
  } catch (error) {
    const code = error instanceof PlatformError ? error.code : 'internal';
    service.audit.record({ ...entry(), outcome: error instanceof AuthError ? 'denied' : 'failure', reason: code });
    throw error;
  }
}

function readJson(context: RouteContext): unknown {
  const { request, service } = context;
  const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') throw new RequestError('unsupported-media-type', 'send the body as application/json');
  const body = request.body ?? Buffer.alloc(0);
  if (body.length > service.config.limits.maxBodyBytes) {
    throw new RequestError('payload-too-large', `the body is larger than ${service.config.limits.maxBodyBytes} bytes`);
  }
  try {
    // Invalid UTF-8 must not turn into U+FFFD silently: two different inputs would share a pseudonym.
    return JSON.parse(STRICT_UTF8.decode(body));
  } catch {
    // JSON.parse's own message quotes the input: never pass it on.
    throw new RequestError('malformed-json', 'the body is not valid UTF-8 JSON');
  }
}

/** A JSON array of strings and nulls, checked in one pass (zod per item costs more than the encryption). */
function stringsOrNulls(value: unknown, field: string, maxItems: number): Nullable<string>[] {
  if (!Array.isArray(value)) throw new RequestError('validation-failed', `${field}: must be an array of strings or nulls`);
  if (value.length > maxItems) throw new RequestError('validation-failed', `${field}: at most ${maxItems} items per request`);
  const problems: ItemProblem[] = [];
  for (let i = 0; i < value.length && problems.length < 20; i++) {
    const item: unknown = value[i];
    if (item !== null && typeof item !== 'string') problems.push({ index: i, reason: 'must be a string or null' });
  }
  if (problems.length > 0) throw new RequestError('validation-failed', `${field}: every item must be a string or null`, problems);
  return value as Nullable<string>[];
}

function deterministicFlag(raw: string | undefined): boolean {
  if (raw === undefined) return true;
  const lowered = raw.toLowerCase();
  if (lowered === 'true' || lowered === '1') return true;
  if (lowered === 'false' || lowered === '0') return false;
  throw new RequestError('validation-failed', 'deterministic: must be true or false');
}

const pseudonymizeBody = z.object({ context: z.string(), values: z.unknown(), deterministic: z.boolean().optional() }).strict();
const reidentifyBody = z.object({ context: z.string(), pseudonyms: z.unknown(), keyVersion: z.number().int().positive().optional() }).strict();
const compatPseudonymizeBody = z.object({ identifiers: z.unknown() }).strict();
// The AWS sample's client sends `reidentifications`; its documentation says `pseudonyms`. Accept either.
const compatReidentifyBody = z.union([z.object({ pseudonyms: z.unknown() }).strict(), z.object({ reidentifications: z.unknown() }).strict()]);

/** Role and context check, item check, the engine call, and the values metric: shared by every batch route. */
function runBatch<R>(context: RouteContext, role: 'pseudonymize' | 'reidentify', contextName: string, rawItems: unknown, field: string, operate: (items: Nullable<string>[]) => R): R {
  const { service, principal } = context;
  context.contextName = contextName;
  authorize(principal!, role, contextName);
  const items = stringsOrNulls(rawItems, field, service.config.limits.maxValues);
  context.valueCount = items.length;
  const result = operate(items);
  service.metrics.values.inc({ operation: role, context: metricContext(service, contextName) }, items.length);
  return result;
}

/** Contexts outside the policy file would let callers mint label values: count them as "other". */
function metricContext(service: PseudonymizationService, contextName: string): string {
  return service.policies.isKnown(contextName) ? contextName : 'other';
}

const ROUTES: readonly Route[] = [
  { method: 'GET', path: '/healthz', handler: () => json(200, { status: 'ok' }) },
  {
    method: 'GET',
    path: '/readyz',
    handler: ({ service }) => {
      if (!service.ready) throw new PlatformError('keyring-unavailable', 'the keyring is not loaded yet');
      return json(200, { status: 'ready', keyVersion: service.keyring.active().version });
    },
  },
  {
    method: 'GET',
    path: '/metrics',
    handler: async ({ service }) => ({
      status: 200,
      headers: { 'content-type': service.metrics.registry.contentType },
      body: await service.metrics.registry.metrics(),
    }),
  },
  { method: 'GET', path: '/openapi.json', handler: ({ service }) => ({ status: 200, headers: { ...JSON_HEADERS }, body: service.openApiDocument }) },
  {
    method: 'POST',
    path: '/v1/pseudonymize',
    handler: async (context) => {
      await authenticate(context, 'pseudonymize');
      const parsed = pseudonymizeBody.safeParse(readJson(context));
      if (!parsed.success) throw shapeError(parsed.error);
      const { context: contextName, values, deterministic } = parsed.data;
      return json(200, runBatch(context, 'pseudonymize', contextName, values, 'values', (items) => context.service.engine.pseudonymize(contextName, items, { deterministic: deterministic ?? true })));
    },
  },
  {
    method: 'POST',
    path: '/v1/reidentify',
    handler: (context) => audited(context, async () => {
      await authenticate(context, 'reidentify');
      const parsed = reidentifyBody.safeParse(readJson(context));
      if (!parsed.success) throw shapeError(parsed.error);
      const { context: contextName, pseudonyms, keyVersion } = parsed.data;
      return json(200, runBatch(context, 'reidentify', contextName, pseudonyms, 'pseudonyms', (items) => context.service.engine.reidentify(contextName, items, { keyVersion })));
    }),
  },
  {
    method: 'POST',
    path: '/pseudonymization',
    handler: async (context) => {
      await authenticate(context, 'pseudonymize');
      const deterministic = deterministicFlag(context.request.query.deterministic);
      const parsed = compatPseudonymizeBody.safeParse(readJson(context));
      if (!parsed.success) throw shapeError(parsed.error);
      const compatContext = context.service.config.compatContext;
      const { pseudonyms } = runBatch(context, 'pseudonymize', compatContext, parsed.data.identifiers, 'identifiers', (items) => context.service.engine.pseudonymize(compatContext, items, { deterministic }));
      return json(200, { pseudonyms });
    },
  },
  {
    method: 'POST',
    path: '/reidentification',
    handler: (context) => audited(context, async () => {
      await authenticate(context, 'reidentify');
      const parsed = compatReidentifyBody.safeParse(readJson(context));
      if (!parsed.success) throw new RequestError('validation-failed', 'body: must be {"pseudonyms": [...]} or {"reidentifications": [...]}');
      const [field, items] = 'pseudonyms' in parsed.data ? ['pseudonyms', parsed.data.pseudonyms] : ['reidentifications', parsed.data.reidentifications];
      const compatContext = context.service.config.compatContext;
      const result = runBatch(context, 'reidentify', compatContext, items, field, (checked) => context.service.engine.reidentify(compatContext, checked));
      // This response shape has no room for per-item errors, and a silent null would end up in a table.
      if (result.errors.length > 0) {
        throw new PlatformError('reidentification-failed', `${result.errors.length} pseudonym(s) could not be reidentified`, result.errors.slice(0, 20));
      }
      return json(200, { identifiers: result.values });
    }),
  },
  { method: 'POST', path: '/v1/login', handler: signIn },
  {
    method: 'POST',
    path: '/v1/erasure-requests',
    handler: async (context) => {
      const principal = await authenticate(context, 'privacy-officer');
      const { request, created } = await erasure(context).requests.file(principal, readJson(context));
      const response = json(created ? 202 : 200, viewOf(request));
      response.headers.location = `/v1/erasure-requests/${request.id}`;
      return response;
    },
  },
  {
    method: 'GET',
    path: '/v1/erasure-requests',
    handler: async (context) => {
      await authenticate(context, 'privacy-officer');
      return json(200, { requests: (await erasure(context).requests.list(context.request.query.status)).map(viewOf) });
    },
  },
  {
    method: 'GET',
    path: '/v1/erasure-requests/{id}',
    handler: async (context) => {
      await authenticate(context, 'privacy-officer');
      return json(200, viewOf(await erasure(context).requests.get(context.params.id ?? '')));
    },
  },
];

function erasure(context: RouteContext): NonNullable<PseudonymizationService['erasure']> {
  if (!context.service.erasure) throw new RequestError('not-found', 'erasure is not configured (PSEUDO_ERASURE_REGISTRY_FILE)');
  return context.service.erasure;
}

const signInBody = z.object({ username: z.string(), password: z.string() }).strict();

/**
 * People sign in with their directory credentials and get a session token. Every way of failing
 * (unknown user, wrong password, locked account, filtered out, injection attempt, empty password)
 * is the same 401, and each counts toward the throttle for that user name and address.
 */
async function signIn(context: RouteContext): Promise<CoreResponse> {
  const { service, request, requestId } = context;
  const directory = await service.peopleDirectory().catch((error: unknown) => {
    throw error instanceof PlatformError ? error : new DirectoryError('the directory settings could not be read');
  });
  if (!directory) throw new RequestError('not-found', 'sign-in with a directory identity is not configured (PSEUDO_LDAP_URL)');
  const parsed = signInBody.safeParse(readJson(context));
  if (!parsed.success) throw shapeError(parsed.error);
  const { username, password } = parsed.data;
  const throttleKeys = [`user:${username.toLowerCase()}`, `address:${request.clientAddress ?? 'unknown'}`];
  const base = { action: 'sign-in' as const, requestId, clientAddress: request.clientAddress };
  const retryAfter = service.throttle.retryAfter(throttleKeys);
  if (retryAfter > 0) {
    service.audit.record({ ...base, outcome: 'denied', actor: { kind: 'anonymous' }, reason: 'throttled' });
    throw new ThrottledError(retryAfter);
  }
  try {
    const person = await directory.authenticate(username, password);
    service.throttle.succeeded(throttleKeys[0]!);
    const actor = { kind: 'person' as const, id: person.username };
    if (person.roles.length === 0) {
      service.audit.record({ ...base, outcome: 'denied', actor, reason: 'no-role' });
      throw new AuthError('forbidden', 'your directory groups grant no role in this service');
    }
    const session = await service.sessions.issue(person.username, person.roles);
    service.audit.record({ ...base, outcome: 'success', actor });
    context.principal = { kind: 'person', id: person.username, name: person.username, roles: new Set(person.roles), contexts: undefined };
    return json(200, { token: session.token, tokenType: 'Bearer', expiresAt: session.expiresAt, roles: person.roles });
  } catch (error) {
    if (error instanceof SignInRejected) {
      service.throttle.failed(throttleKeys);
      // A name that is not in the directory may be a mistyped password: it is not written down.
      const known = error.reason === 'invalid-credentials' || error.reason === 'ambiguous-user';
      service.audit.record({ ...base, outcome: 'failure', actor: known ? { kind: 'person', id: username } : { kind: 'anonymous' }, reason: error.reason });
    } else if (error instanceof DirectoryError) {
      service.audit.record({ ...base, outcome: 'failure', actor: { kind: 'anonymous' }, reason: 'directory-unavailable' });
      service.logger.error({ requestId, error: error.message }, 'directory sign-in failed');
    }
    throw error;
  }
}

const PATHS = new Map<string, Route[]>();
for (const route of ROUTES) PATHS.set(route.path, [...(PATHS.get(route.path) ?? []), route]);
/** Templated paths ({name} matches one segment), tried when no exact path matches. */
const TEMPLATES = [...PATHS.keys()]
  .filter((path) => path.includes('{'))
  .map((path) => ({ path, pattern: new RegExp(`^${path.replace(/\{(\w+)\}/g, '(?<$1>[^/]+)')}$`) }));

function match(path: string): { template: string; params: Record<string, string> } | undefined {
  if (PATHS.has(path)) return { template: path, params: {} };
  for (const { path: template, pattern } of TEMPLATES) {
    const found = pattern.exec(path);
    if (found) return { template, params: { ...found.groups } };
  }
  return undefined;
}

export function createRequestHandler(service: PseudonymizationService): (request: CoreRequest) => Promise<CoreResponse> {
  return async (request) => {
    const started = process.hrtime.bigint();
    const offered = request.headers['x-request-id'];
    const requestId = offered && REQUEST_ID.test(offered) ? offered : randomUUID();
    const matched = match(request.path);
    const candidates = matched ? PATHS.get(matched.template) : undefined;
    const route = candidates?.find((r) => r.method === request.method);
    // Unmatched paths are logged and counted as "unmatched": a path may carry anything. Templates, not raw paths.
    const routeLabel = matched ? matched.template : 'unmatched';
    const context: RouteContext = { service, request, requestId, params: matched?.params ?? {}, valueCount: 0 };
    let response: CoreResponse;
    try {
      if (!candidates) throw new RequestError('not-found', 'no such route');
      if (!route) throw new RequestError('method-not-allowed', `use ${candidates.map((r) => r.method).join(', ')}`);
      response = await route.handler(context);
    } catch (error) {
      response = problemResponse(error, requestId);
      if (response.status === 405 && candidates) response.headers.allow = candidates.map((r) => r.method).join(', ');
      if (response.status >= 500) {
        service.logger.error({ requestId, route: routeLabel, errorType: error instanceof Error ? error.name : typeof error, error: error instanceof PlatformError ? errorMessage(error) : undefined }, 'request failed');
      }
    }
    response.headers['x-request-id'] = requestId;
    response.headers['cache-control'] = 'no-store';
    recordRequest(service, {
      requestId,
      route: routeLabel,
      method: route ? request.method : 'other',
      status: response.status,
      seconds: Number(process.hrtime.bigint() - started) / 1e9,
      values: context.valueCount,
      apiKeyId: context.principal?.id,
    });
    return response;
  };
}

export interface RequestRecord {
  requestId: string;
  /** A route template, 'unmatched' or 'unread-body': never the raw path. */
  route: string;
  method: string;
  status: number;
  seconds: number;
  values: number;
  apiKeyId?: string | undefined;
}

/** The one log line and the metrics of a finished request, from the core or from a transport that answered itself. */
export function recordRequest(service: PseudonymizationService, record: RequestRecord): void {
  service.metrics.requests.inc({ route: record.route, method: record.method, status: String(record.status) });
  service.metrics.duration.observe({ route: record.route, method: record.method }, record.seconds);
  const { seconds, ...fields } = record;
  service.logger.info({ ...fields, ms: Math.round(seconds * 1e5) / 100 }, 'request');
}

