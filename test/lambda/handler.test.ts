/**
 * The Lambda handlers with realistic API Gateway events (REST API payload 1.0, HTTP API payload 2.0),
 * and one table of behaviours run through every entry point: Express over HTTP, Lambda v1, Lambda v2.
 * All three share a data folder, so they must also agree on every pseudonym.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { APIGatewayProxyEvent, APIGatewayProxyEventV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ApiKeyRegistry } from '../../api/auth/apiKeys.ts';
import { bootstrapLocal } from '../../api/bootstrap.ts';
import { createLogger } from '../../api/observability/logger.ts';
import { startServer, type RunningServer } from '../../api/server.ts';
import { apiKeyDocumentsFor } from '../../api/auth/fromConfig.ts';
import { assertMatchesOpenApi } from '../support/openapi.ts';
import { testConfig } from '../support/service.ts';
import { writeLocalCatalog } from '../support/catalog.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'lambda-'));
const registryFile = join(dataDir, 'registry.json');
writeFileSync(
  registryFile,
  JSON.stringify({ catalog: { type: 'jdbc', ...writeLocalCatalog(dataDir, [{ namespace: 'crm', name: 'customers', columns: { email: 'string' } }]) }, tables: [{ name: 'local.crm.customers', columns: { email: 'email' } }] }),
);
const env = { PSEUDO_DATA_DIR: dataDir, PSEUDO_POLICY_FILE: 'test/fixtures/policies.json', PSEUDO_LOG_LEVEL: 'silent', PSEUDO_ERASURE_REGISTRY_FILE: registryFile };
const config = testConfig(dataDir, env);
let server: RunningServer;
let handlers: typeof import('../../lambda/handler.ts');
const keys = { pseudonymize: '', reidentify: '', officer: '' };

beforeAll(async () => {
  const logger = createLogger('silent');
  await bootstrapLocal(config, logger);
  const registry = new ApiKeyRegistry(apiKeyDocumentsFor(config.apiKeys));
  keys.pseudonymize = (await registry.create('spark', ['pseudonymize'], undefined)).key;
  keys.reidentify = (await registry.create('steward', ['reidentify'], undefined)).key;
  keys.officer = (await registry.create('officer', ['privacy-officer'], undefined)).key;
  server = await startServer(config, { logger });
  // The handler reads its configuration from the environment, as in Lambda.
  Object.assign(process.env, env);
  handlers = await import('../../lambda/handler.ts');
});
afterAll(async () => {
  await server.close();
  (await handlers.service()).close();
  rmSync(dataDir, { recursive: true, force: true });
});

interface Call {
  method: string;
  path: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: string;
}
interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const v1Template = JSON.parse(readFileSync('test/fixtures/lambda/rest-api-v1.json', 'utf8')) as APIGatewayProxyEvent;
const v2Template = JSON.parse(readFileSync('test/fixtures/lambda/http-api-v2.json', 'utf8')) as APIGatewayProxyEventV2;

function restEvent(call: Call, base64 = false): APIGatewayProxyEvent {
  const headers = { ...v1Template.headers, ...call.headers };
  delete headers['x-api-key'];
  delete headers['Content-Type'];
  Object.assign(headers, call.headers);
  return {
    ...v1Template,
    httpMethod: call.method,
    path: call.path,
    pathParameters: { proxy: call.path.slice(1) },
    headers,
    queryStringParameters: call.query ?? null,
    body: call.body === undefined ? null : base64 ? Buffer.from(call.body).toString('base64') : call.body,
    isBase64Encoded: base64,
    requestContext: { ...v1Template.requestContext, httpMethod: call.method, path: `/prod${call.path}` },
  };
}

function httpEvent(call: Call, base64 = false): APIGatewayProxyEventV2 {
  const headers: Record<string, string | undefined> = { ...v2Template.headers };
  delete headers['x-api-key'];
  delete headers['content-type'];
  for (const [name, value] of Object.entries(call.headers ?? {})) headers[name.toLowerCase()] = value;
  const rawQueryString = new URLSearchParams(call.query ?? {}).toString();
  return {
    ...v2Template,
    rawPath: `/prod${call.path}`,
    rawQueryString,
    ...(call.query ? { queryStringParameters: call.query } : {}),
    headers,
    body: call.body === undefined ? undefined : base64 ? Buffer.from(call.body).toString('base64') : call.body,
    isBase64Encoded: base64,
    requestContext: { ...v2Template.requestContext, http: { ...v2Template.requestContext.http, method: call.method, path: `/prod${call.path}` } },
  };
}

const entryPoints: { name: string; invoke: (call: Call) => Promise<Answer> }[] = [
  {
    name: 'Express over HTTP',
    invoke: async (call) => {
      const query = call.query ? `?${new URLSearchParams(call.query).toString()}` : '';
      const res = await fetch(server.url + call.path + query, { method: call.method, headers: call.headers, body: call.body });
      return { status: res.status, headers: Object.fromEntries(res.headers.entries()), body: await res.text() };
    },
  },
  {
    name: 'Lambda, REST API payload 1.0',
    invoke: async (call) => {
      const r = await handlers.restApiHandler(restEvent(call));
      return { status: r.statusCode, headers: r.headers as Record<string, string>, body: r.body };
    },
  },
  {
    name: 'Lambda, HTTP API payload 2.0',
    invoke: async (call) => {
      const r = await handlers.httpApiHandler(httpEvent(call));
      return { status: r.statusCode!, headers: r.headers as Record<string, string>, body: r.body! };
    },
  },
];

const json = (body: unknown) => ({ 'content-type': 'application/json', ...body as object });
const pseudonymizeCall = (apiKey: string, body: unknown): Call => ({ method: 'POST', path: '/v1/pseudonymize', headers: json({ 'x-api-key': apiKey }), body: JSON.stringify(body) });

let subjects = 0;
const erasureCall = (apiKey: string): Call => ({
  method: 'POST',
  path: '/v1/erasure-requests',
  headers: json({ 'x-api-key': apiKey }),
  body: JSON.stringify({ reference: 'DSR-LAMBDA', reason: 'gdpr-art17-1a', subjects: [{ context: 'email', value: `person${++subjects}@example.com` }] }),
});

const behaviours: { name: string; call: () => Call; status: number; type?: string }[] = [
  { name: 'pseudonymizes a batch', call: () => pseudonymizeCall(keys.pseudonymize, { context: 'vin', values: ['1HGCM82633A004352', null] }), status: 200 },
  { name: 'needs an API key', call: () => ({ method: 'POST', path: '/v1/pseudonymize', headers: { 'content-type': 'application/json' }, body: '{}' }), status: 401, type: 'unauthenticated' },
  { name: 'checks the role', call: () => ({ method: 'POST', path: '/v1/reidentify', headers: json({ 'x-api-key': keys.pseudonymize }), body: '{"context":"vin","pseudonyms":[]}' }), status: 403, type: 'forbidden' },
  { name: 'wants JSON', call: () => ({ method: 'POST', path: '/v1/pseudonymize', headers: { 'x-api-key': keys.pseudonymize, 'content-type': 'text/csv' }, body: 'a,b' }), status: 415, type: 'unsupported-media-type' },
  { name: 'rejects malformed JSON', call: () => ({ method: 'POST', path: '/v1/pseudonymize', headers: json({ 'x-api-key': keys.pseudonymize }), body: '{"context":' }), status: 400, type: 'malformed-json' },
  { name: 'rejects an unknown context', call: () => pseudonymizeCall(keys.pseudonymize, { context: 'shoe_size', values: ['42'] }), status: 400, type: 'unknown-context' },
  { name: 'rejects a body over the limit', call: () => pseudonymizeCall(keys.pseudonymize, { context: 'vin', values: Array(400_000).fill('1HGCM82633A004352') }), status: 413, type: 'payload-too-large' },
  { name: 'serves the compatibility route', call: () => ({ method: 'POST', path: '/pseudonymization', query: { deterministic: 'True' }, headers: json({ 'x-api-key': keys.pseudonymize }), body: '{"identifiers":["1HGCM82633A004352"]}' }), status: 200 },
  { name: 'answers 404 for unknown routes', call: () => ({ method: 'GET', path: '/admin' }), status: 404, type: 'not-found' },
  { name: 'reports readiness', call: () => ({ method: 'GET', path: '/readyz' }), status: 200 },
  { name: 'files an erasure request', call: () => erasureCall(keys.officer), status: 202 },
  { name: 'files erasure requests only for officers', call: () => erasureCall(keys.reidentify), status: 403, type: 'forbidden' },
  { name: 'lists erasure requests', call: () => ({ method: 'GET', path: '/v1/erasure-requests', query: { status: 'received' }, headers: { 'x-api-key': keys.officer } }), status: 200 },
];

describe.each(entryPoints)('$name', ({ invoke }) => {
  it.each(behaviours)('$name', async ({ call, status, type }) => {
    const made = call();
    const answer = await invoke(made);
    expect(answer.status).toBe(status);
    const contentType = Object.entries(answer.headers).find(([k]) => k.toLowerCase() === 'content-type')?.[1] ?? '';
    if (type) {
      expect(contentType).toContain('application/problem+json');
      expect((JSON.parse(answer.body) as { type: string }).type).toBe(`urn:pseudonymization:problem:${type}`);
    }
    if (status !== 404) assertMatchesOpenApi(made.method, made.path, answer.status, contentType, JSON.parse(answer.body));
  });
});

describe('all entry points agree', () => {
  it('gives the same pseudonyms and reidentifies each other’s', async () => {
    const answers = await Promise.all(entryPoints.map((e) => e.invoke(pseudonymizeCall(keys.pseudonymize, { context: 'email', values: ['jane@example.com'] }))));
    const pseudonyms = answers.map((a) => (JSON.parse(a.body) as { pseudonyms: string[] }).pseudonyms[0]);
    expect(new Set(pseudonyms).size).toBe(1);
    const back = await entryPoints[2]!.invoke({ method: 'POST', path: '/v1/reidentify', headers: json({ 'x-api-key': keys.reidentify }), body: JSON.stringify({ context: 'email', pseudonyms }) });
    expect(JSON.parse(back.body)).toEqual({ values: ['jane@example.com', 'jane@example.com', 'jane@example.com'], errors: [] });
  });
});

describe('Lambda specifics', () => {
  it('decodes base64 bodies (binary media types) on both payload versions', async () => {
    const call = pseudonymizeCall(keys.pseudonymize, { context: 'vin', values: ['1HGCM82633A004352'] });
    const v1 = await handlers.restApiHandler(restEvent(call, true));
    const v2 = await handlers.httpApiHandler(httpEvent(call, true));
    expect(v1.statusCode).toBe(200);
    expect(v2.statusCode).toBe(200);
    expect(v1.body).toBe(v2.body);
  });

  it('routes by the event version in the combined handler and strips the HTTP API stage', async () => {
    const call = { method: 'GET', path: '/healthz' };
    expect((await handlers.handler(httpEvent(call))).statusCode).toBe(200);
    expect((await handlers.handler(restEvent(call))).statusCode).toBe(200);
    const event = httpEvent(call);
    expect(handlers.fromHttpApiEvent({ ...event, requestContext: { ...event.requestContext, stage: '$default' }, rawPath: '/healthz' }).path).toBe('/healthz');
  });

  it('loads the keyring once per cold start', async () => {
    expect(await handlers.service()).toBe(await handlers.service());
  });
});

describe('a Lambda whose service cannot start', () => {
  /**
   * A fresh copy of the module, loaded as Lambda's init phase loads it (AWS_LAMBDA_FUNCTION_NAME set,
   * so the start begins at import), with these settings; stderr lines captured.
   */
  async function coldStart(settings: Record<string, string>, initPhase = true): Promise<{ module: typeof import('../../lambda/handler.ts'); errors: string[]; restore: () => void }> {
    const saved = { ...process.env };
    Object.assign(process.env, initPhase ? { AWS_LAMBDA_FUNCTION_NAME: 'pseudonymization-test' } : {}, settings);
    const errors: string[] = [];
    const spy = vi.spyOn(console, 'error').mockImplementation((...parts: unknown[]) => void errors.push(parts.map(String).join(' ')));
    vi.resetModules();
    const module = await import('../../lambda/handler.ts');
    return {
      module,
      errors,
      restore: () => {
        spy.mockRestore();
        for (const name of Object.keys(process.env)) if (!(name in saved)) Reflect.deleteProperty(process.env, name);
        Object.assign(process.env, saved);
      },
    };
  }

  it('loads without throwing, answers 503 config-invalid, and logs the setting by name, never its value', async () => {
    const { module, errors, restore } = await coldStart({ PSEUDO_PORT: 'eighty-7f3a-sentinel' });
    try {
      const answer = await module.httpApiHandler(httpEvent({ method: 'POST', path: '/v1/pseudonymize', headers: json({ 'x-api-key': keys.pseudonymize }), body: '{"context":"vin","values":["x"]}' }));
      expect(answer.statusCode).toBe(503);
      const problem = JSON.parse(answer.body!) as { type: string; detail: string };
      expect(problem.type).toBe('urn:pseudonymization:problem:config-invalid');
      expect(problem.detail).toContain('PSEUDO_PORT');
      expect(answer.body).not.toContain('sentinel');
      assertMatchesOpenApi('POST', '/v1/pseudonymize', 503, String(answer.headers!['content-type']), problem);
      const logged = errors.map((line) => JSON.parse(line) as { errorClass: string; code: string; key: string });
      expect(logged.length).toBeGreaterThanOrEqual(1);
      expect(logged[0]).toMatchObject({ errorClass: 'ConfigError', code: 'invalid-config', key: 'PSEUDO_PORT' });
      expect(errors.join('\n')).not.toContain('sentinel');
      expect(errors.join('\n')).not.toContain('eighty');
    } finally {
      restore();
    }
  });

  it('answers 503 keyring-unavailable when the keyring cannot be read, and logs one line naming class and code only', async () => {
    const unreadable = join(dataDir, 'keyring-7f3a-sentinel', 'keyring.json');
    const { module, errors, restore } = await coldStart({ PSEUDO_KEYRING_FILE: unreadable }, false);
    try {
      const answer = await module.httpApiHandler(httpEvent({ method: 'POST', path: '/v1/pseudonymize', headers: json({ 'x-api-key': keys.pseudonymize }), body: '{"context":"vin","values":["x"]}' }));
      expect(answer.statusCode).toBe(503);
      const problem = JSON.parse(answer.body!) as { type: string };
      expect(problem.type).toBe('urn:pseudonymization:problem:keyring-unavailable');
      expect(answer.body).not.toContain('sentinel');
      assertMatchesOpenApi('POST', '/v1/pseudonymize', 503, String(answer.headers!['content-type']), problem);
      expect(errors.map((line) => JSON.parse(line) as unknown)).toEqual([{ level: 'error', msg: 'the service could not start', errorClass: 'KeyringError', code: 'keyring-unavailable' }]);
      expect(errors.join('\n')).not.toContain('sentinel');
      expect(errors.join('\n')).not.toContain(dataDir);
    } finally {
      restore();
    }
  });

  it('answers 503 ledger-unavailable when the erasure ledger cannot be opened', async () => {
    // Outside the Lambda runtime (no AWS_LAMBDA_FUNCTION_NAME): there a SQLite ledger is refused as config-invalid
    // before it is opened. The service then starts at the first invocation.
    const notALedger = join(dataDir, 'not-a-ledger.db');
    writeFileSync(notALedger, 'this is not an SQLite database, but it is long enough to be read as one and refused'.repeat(20));
    const { module, errors, restore } = await coldStart({ PSEUDO_ERASURE_LEDGER_FILE: notALedger }, false);
    try {
      const answer = await module.restApiHandler(restEvent({ method: 'GET', path: '/readyz' }));
      expect(answer.statusCode).toBe(503);
      expect((JSON.parse(answer.body) as { type: string }).type).toBe('urn:pseudonymization:problem:ledger-unavailable');
      expect(errors.some((line) => line.includes('"code":"ledger-unavailable"'))).toBe(true);
      expect(errors.join('\n')).not.toContain(dataDir);
    } finally {
      restore();
    }
  });
});
