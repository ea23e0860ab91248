/**
 * The service core's request pipeline, transport-neutral. Express and the Lambda handlers pass
 * requests here unchanged, so every rule holds on both. Routes are declared in routes.ts; this file
 * runs each one the same way, before its handler:
 *
 *   API key or session (401), role (403), `requires` (e.g. 404 when a feature is not configured),
 *   query (400), content type (415), size (413), JSON (400), shape (400), context scope (403),
 *   values (400), then the handler.
 *
 * One error mapping (problem.ts) answers every failure; one log line and the metrics record every request.
 */
import { randomUUID } from 'node:crypto';
import { authorize, type Principal } from '../auth/roles.ts';
import { AuthError, errorMessage, PlatformError, RequestError } from '../errors.ts';
import type { PseudonymizationService } from '../service.ts';
import { clientAddressResolver } from './clientAddress.ts';
import { problemResponse } from './problem.ts';
import { bodyLimit, PUBLIC_MAX_BODY_BYTES, type Route } from './route.ts';
import { ROUTES } from './routes.ts';
import type { CoreRequest, CoreResponse } from './types.ts';

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** What a request did, for its log line, metrics and audit entry. */
interface RequestFacts {
  principal?: Principal;
  /** The context a batch route worked on. */
  contextName?: string;
  /** Values handled. */
  valueCount: number;
}

/** A person's session token (Authorization: Bearer) or a machine's API key (x-api-key). */
async function authenticate(service: PseudonymizationService, request: CoreRequest): Promise<Principal> {
  const bearer = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '');
  // An API key sent as a bearer token would read as an expired session: say where it belongs (never echoing it).
  if (bearer?.[1]!.startsWith('pk_')) throw new AuthError('unauthenticated', 'API keys go in the x-api-key header, not in Authorization: Bearer');
  return bearer ? service.sessions.verify(bearer[1]!) : service.authenticator.authenticate(request.headers['x-api-key']);
}

/** Every check of the route's declaration, in the documented order, then its handler. */
async function runRoute(route: Route, service: PseudonymizationService, request: CoreRequest, requestId: string, params: Record<string, string>, facts: RequestFacts): Promise<CoreResponse> {
  if (route.role !== 'public') {
    facts.principal = await authenticate(service, request);
    authorize(facts.principal, route.role);
  }
  await route.requires?.(service);
  const accepted = route.accept(request, service, params);
  if (accepted.contextName !== undefined) {
    facts.contextName = accepted.contextName;
    if (route.role !== 'public') authorize(facts.principal!, route.role, accepted.contextName);
  }
  facts.valueCount = accepted.checkItems();
  return accepted.run({
    service,
    request,
    requestId,
    params,
    principal: facts.principal,
    identify: (principal) => {
      facts.principal = principal;
    },
  });
}

/** Runs an audited route (reidentify, keyring reload) and writes its audit entry: success, denied (401/403) or failure. */
async function audited(service: PseudonymizationService, route: Route, request: CoreRequest, requestId: string, facts: RequestFacts, run: () => Promise<CoreResponse>): Promise<CoreResponse> {
  const entry = () => ({
    action: route.auditAction,
    actor: facts.principal ? { kind: facts.principal.kind, id: facts.principal.id } : { kind: 'anonymous' as const },
    requestId,
    clientAddress: request.clientAddress,
    // A context outside the policy file is whatever the caller typed (an identifier, possibly): "other", as in the metrics.
    context: facts.contextName === undefined || service.policies.isKnown(facts.contextName) ? facts.contextName : 'other',
    count: facts.valueCount,
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

/**
 * The most a transport needs to buffer for this request: the matched route's body limit (for a path
 * whose method does not match, the largest of its routes; for an unknown path, a public route's), so
 * Express never reads megabytes for a route that takes a few KB.
 */
export function bodyLimitFor(service: PseudonymizationService, method: string, path: string): number {
  const configured = service.config.limits.maxBodyBytes;
  const candidates = PATHS.get(match(path)?.template ?? '') ?? [];
  const route = candidates.find((r) => r.method === method);
  if (route) return bodyLimit(route, configured);
  return Math.max(bodyLimit({ maxBodyBytes: PUBLIC_MAX_BODY_BYTES }, configured), ...candidates.map((r) => bodyLimit(r, configured)));
}

export function createRequestHandler(service: PseudonymizationService): (request: CoreRequest) => Promise<CoreResponse> {
  const clientAddressOf = clientAddressResolver(service.config.trustedProxies);
  return async (received) => {
    const started = process.hrtime.bigint();
    // The transport gives the peer; who the client is behind trusted proxies is decided here, once, for both transports.
    const request: CoreRequest = { ...received, clientAddress: clientAddressOf(received.clientAddress, received.headers['x-forwarded-for']) };
    const offered = request.headers['x-request-id'];
    const requestId = offered && REQUEST_ID.test(offered) ? offered : randomUUID();
    const matched = match(request.path);
    const candidates = matched ? PATHS.get(matched.template) : undefined;
    const route = candidates?.find((r) => r.method === request.method);
    // Unmatched paths are logged and counted as "unmatched": a path may carry anything. Templates, not raw paths.
    const routeLabel = matched ? matched.template : 'unmatched';
    const facts: RequestFacts = { valueCount: 0 };
    let response: CoreResponse;
    try {
      if (!candidates) throw new RequestError('not-found', 'no such route');
      if (!route) throw new RequestError('method-not-allowed', `use ${candidates.map((r) => r.method).join(', ')}`);
      const run = () => runRoute(route, service, request, requestId, matched?.params ?? {}, facts);
      response = await (route.audited ? audited(service, route, request, requestId, facts, run) : run());
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
      valueCount: facts.valueCount,
      apiKeyId: facts.principal?.id,
      ...(request.gatewayRequestId ? { gatewayRequestId: request.gatewayRequestId } : {}),
      ...(request.invocationId ? { invocationId: request.invocationId } : {}),
    });
    return response;
  };
}

export interface RequestRecord {
  requestId: string;
  /** A route template, 'unmatched', 'unread-body' or 'unread-request' (Node could not parse it): never the raw path. */
  route: string;
  method: string;
  status: number;
  seconds: number;
  /** How many values the request carried: a count, under a name the logger's redaction list (which hides `values`) leaves alone. */
  valueCount: number;
  apiKeyId?: string | undefined;
  /** On Lambda: API Gateway's request id and the invocation's (CoreRequest). */
  gatewayRequestId?: string | undefined;
  invocationId?: string | undefined;
}

/** The one log line and the metrics of a finished request, from the core or from a transport that answered itself. */
export function recordRequest(service: PseudonymizationService, record: RequestRecord): void {
  service.metrics.recordRequest({ route: record.route, method: record.method, status: record.status, seconds: record.seconds });
  const { seconds, ...fields } = record;
  service.logger.info({ ...fields, ms: Math.round(seconds * 1e5) / 100 }, 'request');
}
