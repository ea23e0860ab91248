/**
 * The route table: the one place a route is declared. Each entry states method, path, role, where
 * the context scope of an API key applies, its query and body schemas and, where cheap, the response
 * schema; the core (handler.ts) checks all of that before the handler runs. The handlers only call
 * the service and shape the answer. test/api/openapi.test.ts holds api/openapi.json to this table.
 *
 * The one path served outside this table is /console/* (api/http/console.ts; server.ts `consoleMiddleware`,
 * lambda/handler.ts `isConsolePath`): the console's three static files, answered before the core. Nothing the
 * core does applies to them: no sign-in (the page is public and signs in through /v1/login itself), no JSON body
 * or answer, no schema, only exact file names from memory. Declaring them here would add a route kind the core
 * would have to special-case.
 */
import { z } from 'zod';
import { signIn } from '../auth/signIn.ts';
import { ROLES } from '../auth/roles.ts';
import type { ReidentifyFailure } from '../engine/engine.ts';
import { AuthError, DirectoryError, PlatformError, RequestError, ThrottledError } from '../errors.ts';
import { ERASURE_STATUSES, EXTENSION_MONTHS, LEGAL_GROUNDS, LIFT_REASONS, GENESIS_HASH, verifyAuditChain } from '../erasure/ledger.ts';
import { liftViewOf, MAX_SUBJECTS_PER_LIFT, type LiftFiling } from '../erasure/lifts.ts';
import { MAX_SUBJECTS_PER_REQUEST, viewOf, type ErasureFiling, type ExtensionFiling } from '../erasure/requests.ts';
import type { ValueOperation } from '../observability/sink.ts';
import type { PseudonymizationService } from '../service.ts';
import { arrowAnswer, arrowAnswerPacked, ARROW_STREAM } from './arrow.ts';
import { defineRoute, PUBLIC_MAX_BODY_BYTES, type BodyFormat, type Route } from './route.ts';
import type { CoreResponse } from './types.ts';

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8' };

function json(status: number, body: unknown): CoreResponse {
  return { status, headers: { ...JSON_HEADERS }, body: JSON.stringify(body) };
}

/** Contexts outside the policy file would let callers mint label values: count them as "other". */
function countValues(service: PseudonymizationService, operation: ValueOperation, contextName: string, count: number): void {
  service.metrics.countValues(operation, service.policies.isKnown(contextName) ? contextName : 'other', count);
}

function erasureOf(service: PseudonymizationService): NonNullable<PseudonymizationService['erasure']> {
  if (!service.erasure) throw new RequestError('not-found', 'erasure is not configured (PSEUDO_ERASURE_REGISTRY_FILE)');
  return service.erasure;
}

/** The directory, or 404 when sign-in is not configured; a directory whose settings cannot be read is a 503. */
async function directoryOf(service: PseudonymizationService) {
  const directory = await service.peopleDirectory().catch((error: unknown) => {
    throw error instanceof PlatformError ? error : new DirectoryError('the directory settings could not be read');
  });
  if (!directory) throw new RequestError('not-found', 'sign-in with a directory identity is not configured (PSEUDO_LDAP_URL)');
  return directory;
}

/**
 * Reidentify needs the keys as much as pseudonymize does: without them every item would come back as
 * `unknown-key-version` in a 200, which a caller can mistake for bad pseudonyms. Answer 503 like pseudonymize.
 */
function keyringLoaded(service: PseudonymizationService): void {
  if (!service.ready) throw new PlatformError('keyring-unavailable', 'the keyring is not loaded yet');
}

const nullableStrings = z.array(z.string().nullable());
const keyVersion = z.number().int().positive();

/**
 * A batch route's answer in the format asked for: JSON as declared, or Arrow IPC (api/http/arrow.ts) with the
 * answers in `column`, why a row is null in `reason`, and the key version (pseudonymize) in `pseudo-key-version`.
 */
function batchAnswer(format: BodyFormat, body: object, arrow: { column: string; answers: (string | null)[]; reasons: { index: number; reason: string }[]; keyVersion?: number }): CoreResponse {
  if (format !== ARROW_STREAM) return json(200, body);
  return arrowResponse(arrowAnswer(arrow.column, arrow.answers, arrow.reasons), arrow.keyVersion);
}

function arrowResponse(body: Buffer, keyVersion: number | undefined): CoreResponse {
  const headers: Record<string, string> = { 'content-type': ARROW_STREAM };
  if (keyVersion !== undefined) headers['pseudo-key-version'] = String(keyVersion);
  return { status: 200, headers, body };
}

function erasedReasons(erased: readonly number[]): { index: number; reason: string }[] {
  return erased.map((index) => ({ index, reason: 'erased' }));
}

/** A key version in a query string: a positive decimal integer. */
const keyVersionParameter = z
  .string()
  .regex(/^[1-9][0-9]{0,9}$/, { error: 'must be a positive integer' })
  .transform(Number)
  .pipe(keyVersion);
const REIDENTIFY_FAILURES = ['malformed', 'unknown-key-version', 'key-destroyed', 'authentication-failed', 'irreversible', 'erased'] as const satisfies readonly ReidentifyFailure[];
const itemError = z.object({ index: z.number().int().nonnegative(), reason: z.enum(REIDENTIFY_FAILURES) }).strict();

/** `deterministic` on the compatibility route: the AWS sample's clients send True/False in any case, or 1/0. */
const deterministicFlag = z
  .string()
  .toLowerCase()
  .pipe(z.enum(['true', 'false', '1', '0'], { error: 'must be true or false' }))
  .transform((flag) => flag === 'true' || flag === '1');

/** The compatibility routes' shapes, shared by the fixed-context routes and those with the context in the path. */
const compatQuery = z.object({ deterministic: deterministicFlag.optional() });
const compatPseudonymizationBody = { schema: z.object({ identifiers: nullableStrings }).strict(), items: ['identifiers'] };
const compatPseudonymizationResponse = z.object({ pseudonyms: nullableStrings }).strict();
// The AWS sample's client sends `reidentifications`; its documentation says `pseudonyms`. Accept either.
const compatReidentificationBody = {
  schema: z.union([z.object({ pseudonyms: nullableStrings }).strict(), z.object({ reidentifications: nullableStrings }).strict()], {
    error: 'must be {"pseudonyms": [...]} or {"reidentifications": [...]}',
  }),
  items: ['pseudonyms', 'reidentifications'],
};
const compatReidentificationResponse = z.object({ identifiers: nullableStrings }).strict();

async function compatPseudonymize(service: PseudonymizationService, contextName: string, items: (string | null)[], deterministic: boolean): Promise<CoreResponse> {
  const { pseudonyms, erased } = await service.pseudonyms.pseudonymize(contextName, items, { deterministic });
  countValues(service, 'pseudonymize', contextName, items.length);
  // This response shape has no room to withhold items, and a null would be written as if the value were null:
  // refuse the batch, naming indexes only, so an old caller cannot silently write an erased person back.
  if (erased.length > 0) {
    throw new PlatformError('subject-erased', `${erased.length} value(s) belong to subjects whose erasure was filed: remove them and send the batch again`, erased.map((index) => ({ index, reason: 'erased' })));
  }
  return json(200, { pseudonyms });
}

async function compatReidentify(service: PseudonymizationService, contextName: string, items: (string | null)[]): Promise<CoreResponse> {
  const result = await service.pseudonyms.reidentify(contextName, items);
  countValues(service, 'reidentify', contextName, items.length);
  // This response shape has no room for per-item errors, and a silent null would end up in a table.
  if (result.errors.length > 0) {
    throw new PlatformError('reidentification-failed', `${result.errors.length} pseudonym(s) could not be reidentified`, result.errors.slice(0, 20));
  }
  return json(200, { identifiers: result.values });
}

const subjectSchema = z.union(
  [
    z.object({ context: z.string(), value: z.string() }).strict(),
    // `confirm` (the identifier's last 4 characters, or all of it) is required for an FPE pseudonym: FF1 is not authenticated.
    z.object({ context: z.string(), pseudonym: z.string(), keyVersion: keyVersion.optional(), confirm: z.string().optional() }).strict(),
  ],
  { error: 'must be {context, value} or {context, pseudonym, keyVersion?, confirm?}' },
);

const ticketReference = z.string({ error: 'a ticket reference of 1-64 letters, digits and . _ : / # -' }).regex(/^[A-Za-z0-9][A-Za-z0-9._:/#-]{0,63}$/, 'a ticket reference of 1-64 letters, digits and . _ : / # -');

const erasureFiling: z.ZodType<ErasureFiling> = z
  .object({
    reference: ticketReference,
    reason: z.enum(LEGAL_GROUNDS, { error: `one of ${LEGAL_GROUNDS.join(', ')}` }),
    subjects: z
      .array(subjectSchema, { error: 'an array of {context, value} or {context, pseudonym}' })
      .min(1, { error: 'at least one item' })
      .max(MAX_SUBJECTS_PER_REQUEST, { error: `at most ${MAX_SUBJECTS_PER_REQUEST} items` }),
  })
  .strict();

const liftFiling: z.ZodType<LiftFiling> = z
  .object({
    reference: ticketReference,
    reason: z.enum(LIFT_REASONS, { error: `one of ${LIFT_REASONS.join(', ')}` }),
    subjects: z
      .array(subjectSchema, { error: 'an array of {context, value} or {context, pseudonym}' })
      .min(1, { error: 'at least one item' })
      .max(MAX_SUBJECTS_PER_LIFT, { error: `at most ${MAX_SUBJECTS_PER_LIFT} items` }),
  })
  .strict();

/** The reason is free text (Art. 12(3) has it told to the data subject): every message names the rule, never quotes it. */
const extensionFiling: z.ZodType<ExtensionFiling> = z
  .object({
    reason: z.string({ error: 'a text of 1-500 characters' }).min(1, { error: 'a text of 1-500 characters' }).max(500, { error: 'a text of 1-500 characters' }),
    months: z.literal(EXTENSION_MONTHS, { error: `one of ${EXTENSION_MONTHS.join(', ')} (GDPR Art. 12(3): two further months at most)` }),
  })
  .strict();

const liftView = z
  .object({
    id: z.string(),
    reference: z.string(),
    reason: z.enum(LIFT_REASONS),
    createdAt: z.string(),
    subjects: z.object({ count: z.number().int().nonnegative(), contexts: z.array(z.string()) }).strict(),
  })
  .strict();

/**
 * The erasure certificate as served: contracts/erasure-certificate.schema.json in zod, so the OpenAPI test compares
 * it too (the ledger keeps only certificates that passed that contract; test/api/openapi.test.ts runs the contract's
 * golden documents through this schema). 64-bit ids and counts are decimal strings.
 */
const int64 = z.string().regex(/^-?[0-9]+$/).max(20);
const opaqueId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/);
const tableName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$/);
const timestamp = z.string().regex(/^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$/);
const count = z.number().int().nonnegative();
const certificateTableReport = z
  .object({
    table: tableName,
    snapshotBefore: int64.nullable(),
    snapshotAfter: int64.nullable(),
    startedAt: timestamp,
    finishedAt: timestamp,
    commitConflictsRetried: count,
    otherRowsBefore: int64,
    rowsDeleted: int64,
    dataFilesRewritten: int64,
    deleteFilesRemoved: int64.nullable(),
    positionDeleteFilesRewritten: int64,
    manifestsRewritten: int64.optional(),
    refs: z.array(z.object({ name: z.string().min(1), type: z.enum(['tag', 'branch']), snapshotId: int64, action: z.literal('dropped') }).strict()),
    streamMarkersFolded: z.record(z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/), int64),
    filesDeletedByExpiry: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), int64),
    orphanFilesDeleted: int64,
    previousMetadataFilesDeleted: int64,
    verification: z
      .object({
        method: z.string().min(1),
        filesScanned: int64,
        bytesScanned: int64,
        filesWithMatches: z.array(z.string()),
        snapshotsChecked: int64,
        timeTravelRows: int64,
        otherRowsBefore: int64,
        otherRowsAfter: int64,
        result: z.enum(['passed', 'failed']),
      })
      .strict(),
  })
  .strict();
export const erasureCertificateView = z
  .object({
    certificateVersion: z.literal(2),
    runId: opaqueId,
    requestIds: z.array(opaqueId),
    subjects: count,
    pseudonymsSearched: count,
    startedAt: timestamp,
    finishedAt: timestamp,
    tables: z.array(certificateTableReport),
    result: z.enum(['verified', 'failed']),
  })
  .strict();

/** What requests.ts `viewOf` shows of a request: counts and contexts of subjects, never pseudonyms. */
const erasureRequestView = z
  .object({
    id: z.string(),
    reference: z.string(),
    reason: z.enum(LEGAL_GROUNDS),
    status: z.enum(ERASURE_STATUSES),
    attempts: count,
    createdAt: z.string(),
    updatedAt: z.string(),
    subjects: z.object({ count, contexts: z.array(z.string()) }).strict(),
    tables: z.array(z.object({ table: z.string(), status: z.enum(['pending', 'running', 'verified', 'failed']), detail: z.string().optional() }).strict()),
    deadline: z.string(),
    extension: z.object({ months: z.literal(EXTENSION_MONTHS), reason: z.string(), by: z.string(), at: z.string() }).strict().optional(),
    error: z.string().optional(),
    certificate: erasureCertificateView.optional(),
  })
  .strict();

const auditEntryView = z
  .object({ seq: z.number().int().positive(), at: z.string(), actor: z.string(), action: z.string(), requestId: z.string().optional(), outcome: z.string(), previousHash: z.string(), hash: z.string() })
  .strict();

const erasureOptions = z
  .object({
    legalGrounds: z.array(z.enum(LEGAL_GROUNDS)),
    liftReasons: z.array(z.enum(LIFT_REASONS)),
    contexts: z.array(z.object({ name: z.string(), transform: z.enum(['deterministic', 'hash', 'fpe']), tables: z.number().int().nonnegative() }).strict()),
  })
  .strict();

export const ROUTES: readonly Route[] = [
  defineRoute({ method: 'GET', path: '/healthz', role: 'public', response: z.object({ status: z.literal('ok') }).strict(), handler: () => json(200, { status: 'ok' }) }),
  defineRoute({
    method: 'GET',
    path: '/readyz',
    role: 'public',
    response: z.object({ status: z.literal('ready'), keyVersion }).strict(),
    handler: ({ service }) => {
      if (!service.ready) throw new PlatformError('keyring-unavailable', 'the keyring is not loaded yet');
      return json(200, { status: 'ready', keyVersion: service.keyring.active().version });
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/metrics',
    role: 'public',
    handler: async ({ service }) => ({ status: 200, headers: { 'content-type': service.metrics.registry.contentType }, body: await service.metrics.registry.metrics() }),
  }),
  defineRoute({ method: 'GET', path: '/openapi.json', role: 'public', response: z.looseObject({}), handler: ({ service }) => ({ status: 200, headers: { ...JSON_HEADERS }, body: service.openApiDocument }) }),
  defineRoute({
    method: 'POST',
    path: '/v1/pseudonymize',
    role: 'pseudonymize',
    scope: 'body-context',
    body: {
      schema: z.object({ context: z.string(), values: nullableStrings, deterministic: z.boolean().optional(), allVersions: z.boolean().optional() }).strict(),
      items: ['values'],
      arrow: { fields: z.object({ context: z.string(), deterministic: deterministicFlag.optional() }) },
    },
    response: z
      .object({ pseudonyms: nullableStrings, keyVersion, erased: z.array(z.number().int().nonnegative()).optional(), allVersions: z.array(z.array(z.string()).nullable()).optional() })
      .strict(),
    handler: async (input) => {
      // `items` is read only off the packed path: for an Arrow body it is a getter making a string per value.
      const { service, body, packedItems, answerFormat } = input;
      // A value whose subject's erasure was filed gets null, and its index is listed in `erased` (only when there are some).
      // allVersions: per value, its pseudonyms under every readable version (newest first), for `IN (...)` over data not yet re-keyed.
      if (body.allVersions && body.deterministic === false) throw new RequestError('validation-failed', 'allVersions: needs deterministic pseudonyms');
      if (body.allVersions && answerFormat !== 'application/json') throw new RequestError('validation-failed', 'allVersions: answered as JSON only (an Arrow answer has one column); ask without Accept: application/vnd.apache.arrow.stream');
      const mode = { deterministic: body.deterministic ?? true };
      if (packedItems && answerFormat === ARROW_STREAM && service.engine.takesPacked(body.context, mode)) {
        // Arrow in and out on the AES-SIV path: the column's buffers to the engine and its output into the answer, no string per value.
        const packed = await service.pseudonyms.pseudonymizePacked(body.context, packedItems, mode);
        countValues(service, 'pseudonymize', body.context, packedItems.offsets.length - 1);
        return arrowResponse(arrowAnswerPacked('pseudonyms', packed.pseudonyms, erasedReasons(packed.erased)), packed.keyVersion);
      }
      const { pseudonyms, keyVersion: version, erased, allVersions } = await service.pseudonyms.pseudonymize(body.context, input.items, { deterministic: body.deterministic ?? true, allVersions: body.allVersions });
      countValues(service, 'pseudonymize', body.context, input.items.length);
      return batchAnswer(answerFormat, { pseudonyms, keyVersion: version, ...(erased.length > 0 ? { erased } : {}), ...(allVersions ? { allVersions } : {}) }, {
        column: 'pseudonyms',
        answers: pseudonyms,
        reasons: erasedReasons(erased),
        keyVersion: version,
      });
    },
  }),
  defineRoute({
    method: 'POST',
    path: '/v1/reidentify',
    role: 'reidentify',
    scope: 'body-context',
    audited: true,
    requires: keyringLoaded,
    body: {
      schema: z.object({ context: z.string(), pseudonyms: nullableStrings, keyVersion: keyVersion.optional() }).strict(),
      items: ['pseudonyms'],
      arrow: { fields: z.object({ context: z.string(), keyVersion: keyVersionParameter.optional() }) },
    },
    response: z.object({ values: nullableStrings, errors: z.array(itemError) }).strict(),
    handler: async (input) => {
      // `items` is read only off the packed path: for an Arrow body it is a getter making a string per value.
      const { service, body, packedItems, answerFormat } = input;
      if (packedItems && answerFormat === ARROW_STREAM && service.engine.takesPackedTokens(body.context)) {
        // Arrow in and out on the token path: the column's buffers to the engine, the values' bytes into the answer, no string per value.
        const packed = await service.pseudonyms.reidentifyPacked(body.context, packedItems);
        countValues(service, 'reidentify', body.context, packedItems.offsets.length - 1);
        return arrowResponse(arrowAnswerPacked('values', packed.values, packed.errors), undefined);
      }
      const result = await service.pseudonyms.reidentify(body.context, input.items, { keyVersion: body.keyVersion });
      countValues(service, 'reidentify', body.context, input.items.length);
      return batchAnswer(answerFormat, result, { column: 'values', answers: result.values, reasons: result.errors });
    },
  }),
  defineRoute({
    method: 'POST',
    path: '/v1/rewrap',
    role: 'rewrap',
    scope: 'body-context',
    // Audited as reidentify is: a key holding rewrap and pseudonymize could compare a rewrapped pseudonym with
    // pseudonyms of guessed values, so who rewrapped how much is on record.
    audited: true,
    auditAction: 'rewrap',
    requires: keyringLoaded,
    // keyVersion: the version of FF1 inputs, which do not carry it (as in reidentify).
    body: {
      schema: z.object({ context: z.string(), pseudonyms: nullableStrings, keyVersion: keyVersion.optional() }).strict(),
      items: ['pseudonyms'],
      arrow: { fields: z.object({ context: z.string(), keyVersion: keyVersionParameter.optional() }) },
    },
    response: z.object({ pseudonyms: nullableStrings, keyVersion, errors: z.array(itemError), erased: z.array(z.number().int().nonnegative()).optional() }).strict(),
    handler: async (input) => {
      // `items` is read only off the packed path: for an Arrow body it is a getter making a string per value.
      const { service, body, packedItems, answerFormat } = input;
      // The values stay inside the service: a re-keying job holding only this role never sees one.
      if (packedItems && answerFormat === ARROW_STREAM && service.engine.takesPackedTokens(body.context)) {
        const packed = await service.pseudonyms.rewrapPacked(body.context, packedItems);
        countValues(service, 'rewrap', body.context, packedItems.offsets.length - 1);
        return arrowResponse(arrowAnswerPacked('pseudonyms', packed.pseudonyms, [...packed.errors, ...erasedReasons(packed.erased)]), packed.keyVersion);
      }
      const { pseudonyms, keyVersion: version, errors, erased } = await service.pseudonyms.rewrap(body.context, input.items, { keyVersion: body.keyVersion });
      countValues(service, 'rewrap', body.context, input.items.length);
      return batchAnswer(answerFormat, erased.length > 0 ? { pseudonyms, keyVersion: version, errors, erased } : { pseudonyms, keyVersion: version, errors }, {
        column: 'pseudonyms',
        answers: pseudonyms,
        reasons: [...errors, ...erased.map((index) => ({ index, reason: 'erased' }))],
        keyVersion: version,
      });
    },
  }),
  defineRoute({
    method: 'POST',
    path: '/v1/admin/keyring/reload',
    role: 'admin',
    audited: true,
    auditAction: 'keyring-reload',
    response: z.object({ keyVersion }).strict(),
    // After `keys rotate` or `keys destroy`: this process switches now instead of at its next refresh (PSEUDO_KEYRING_REFRESH_SECONDS).
    handler: async ({ service }) => json(200, { keyVersion: await service.reloadKeyring() }),
  }),
  defineRoute({
    method: 'POST',
    path: '/pseudonymization',
    role: 'pseudonymize',
    scope: 'compat-context',
    query: compatQuery,
    body: compatPseudonymizationBody,
    response: compatPseudonymizationResponse,
    handler: async ({ service, query, items }) => compatPseudonymize(service, service.config.compatContext, items, query.deterministic ?? true),
  }),
  defineRoute({
    method: 'POST',
    path: '/compat/contexts/{context}/pseudonymization',
    role: 'pseudonymize',
    scope: 'path-context',
    query: compatQuery,
    body: compatPseudonymizationBody,
    response: compatPseudonymizationResponse,
    handler: async ({ service, query, items, contextName }) => compatPseudonymize(service, contextName ?? '', items, query.deterministic ?? true),
  }),
  defineRoute({
    method: 'POST',
    path: '/reidentification',
    role: 'reidentify',
    scope: 'compat-context',
    audited: true,
    requires: keyringLoaded,
    body: compatReidentificationBody,
    response: compatReidentificationResponse,
    handler: async ({ service, items }) => compatReidentify(service, service.config.compatContext, items),
  }),
  defineRoute({
    method: 'POST',
    path: '/compat/contexts/{context}/reidentification',
    role: 'reidentify',
    scope: 'path-context',
    audited: true,
    requires: keyringLoaded,
    body: compatReidentificationBody,
    response: compatReidentificationResponse,
    handler: async ({ service, items, contextName }) => compatReidentify(service, contextName ?? '', items),
  }),
  defineRoute({
    method: 'POST',
    path: '/v1/login',
    role: 'public',
    // Unauthenticated: a user name and a password fit in far less; nothing larger is read or parsed.
    maxBodyBytes: PUBLIC_MAX_BODY_BYTES,
    requires: async (service) => {
      await directoryOf(service);
    },
    body: { schema: z.object({ username: z.string(), password: z.string() }).strict() },
    response: z.object({ token: z.string(), tokenType: z.literal('Bearer'), expiresAt: z.string(), roles: z.array(z.enum(ROLES)) }).strict(),
    handler: async ({ service, request, requestId, body, identify }) => {
      const directory = await directoryOf(service);
      const outcome = await signIn(
        { directory, throttle: service.throttle, sessions: service.sessions, audit: service.audit, logger: service.logger },
        { username: body.username, password: body.password, clientAddress: request.clientAddress, requestId },
      );
      if (outcome.kind === 'refused') {
        if (outcome.reason === 'throttled') throw new ThrottledError(outcome.retryAfterSeconds);
        if (outcome.reason === 'no-role') throw new AuthError('forbidden', 'your directory groups grant no role in this service');
        throw new AuthError('unauthenticated', 'the user name or password is not correct');
      }
      identify({ kind: 'person', id: outcome.username, name: outcome.username, roles: new Set(outcome.roles), contexts: undefined });
      return json(200, { token: outcome.session.token, tokenType: 'Bearer', expiresAt: outcome.session.expiresAt, roles: outcome.roles });
    },
  }),
  defineRoute({
    method: 'POST',
    path: '/v1/erasure-requests',
    role: 'privacy-officer',
    requires: (service) => void erasureOf(service),
    body: { schema: erasureFiling },
    response: erasureRequestView,
    handler: async ({ service, principal, body }) => {
      const { request, created } = await erasureOf(service).requests.file(principal!, body);
      const response = json(created ? 202 : 200, viewOf(request));
      response.headers.location = `/v1/erasure-requests/${request.id}`;
      return response;
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/v1/erasure-requests',
    role: 'privacy-officer',
    requires: (service) => void erasureOf(service),
    query: z.object({ status: z.enum(ERASURE_STATUSES).optional() }),
    response: z.object({ requests: z.array(erasureRequestView) }).strict(),
    handler: async ({ service, query }) => json(200, { requests: (await erasureOf(service).requests.list(query.status)).map(viewOf) }),
  }),
  defineRoute({
    method: 'GET',
    path: '/v1/erasure-requests/{id}',
    role: 'privacy-officer',
    requires: (service) => void erasureOf(service),
    response: erasureRequestView,
    handler: async ({ service, params }) => json(200, viewOf(await erasureOf(service).requests.get(params.id ?? ''))),
  }),
  defineRoute({
    method: 'POST',
    path: '/v1/erasure-requests/{id}/extension',
    role: 'privacy-officer',
    requires: (service) => void erasureOf(service),
    body: { schema: extensionFiling },
    response: erasureRequestView,
    // Once per request, and not once it is verified (409 extension-refused); the audit chain gets an erasure.extended entry.
    handler: async ({ service, principal, params, body }) => json(200, viewOf(await erasureOf(service).requests.extend(principal!, params.id ?? '', body))),
  }),
  defineRoute({
    method: 'GET',
    path: '/v1/erasure-requests/{id}/audit',
    role: 'privacy-officer',
    requires: (service) => void erasureOf(service),
    response: z
      .object({
        entries: z.array(auditEntryView),
        chain: z.object({ entries: z.number().int().nonnegative(), valid: z.boolean(), brokenAt: z.number().int().optional(), headSeq: z.number().int().nonnegative(), headHash: z.string() }).strict(),
      })
      .strict(),
    // The request's entries of the hash chain, and the whole chain verified: its head hash is what an officer keeps elsewhere.
    handler: async ({ service, params }) => {
      const erasure = erasureOf(service);
      const request = await erasure.requests.get(params.id ?? '');
      const all = await erasure.ledger.auditEntries();
      const last = all.at(-1);
      const chain = { ...verifyAuditChain(all), headSeq: last?.seq ?? 0, headHash: last?.hash ?? GENESIS_HASH };
      return json(200, { entries: all.filter((entry) => entry.requestId === request.id), chain });
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/v1/erasure-options',
    role: 'privacy-officer',
    requires: (service) => void erasureOf(service),
    response: erasureOptions,
    // What a filing form offers: the legal grounds and lift reasons the API takes, and the contexts of registered tables.
    handler: ({ service }) => {
      const registry = erasureOf(service).registry;
      const names = [...new Set(registry.tables.flatMap((table) => Object.values(table.columns)))].sort();
      const contexts = names.map((name) => ({ name, transform: service.policies.resolve(name).transform, tables: registry.tablesFor([name]).length }));
      return json(200, { legalGrounds: [...LEGAL_GROUNDS], liftReasons: [...LIFT_REASONS], contexts });
    },
  }),
  defineRoute({
    method: 'POST',
    path: '/v1/erasure-lifts',
    role: 'privacy-officer',
    requires: (service) => void erasureOf(service),
    body: { schema: liftFiling },
    response: liftView,
    // Subjects are answered again from now on; erased data stays erased; a later filing suppresses them again.
    handler: async ({ service, principal, body }) => json(201, liftViewOf(await erasureOf(service).lifts.lift(principal!, body))),
  }),
  defineRoute({
    method: 'GET',
    path: '/v1/erasure-lifts',
    role: 'privacy-officer',
    requires: (service) => void erasureOf(service),
    response: z.object({ lifts: z.array(liftView) }).strict(),
    handler: async ({ service }) => json(200, { lifts: (await erasureOf(service).lifts.list()).map(liftViewOf) }),
  }),
];
