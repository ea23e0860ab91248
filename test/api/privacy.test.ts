/**
 * Privacy by default: sentinel identifiers, pseudonyms and API keys go through every endpoint,
 * including every error path; none may appear in any log line (captured at trace level), in the
 * metrics, or in a response. Every route of the route table also gets sentinels as object keys,
 * query parameter names and values, header names and values, and path segments.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ROUTES } from '../../api/http/routes.ts';
import { writeLocalCatalog } from '../support/catalog.ts';
import { startTestService, type CallResult, type TestService } from '../support/service.ts';
import { PEOPLE, startSlapd, type TestDirectory } from '../support/slapd.ts';

let api: TestService;
let directory: TestDirectory;
beforeAll(async () => {
  // Every route live: erasure needs a table registry, sign-in a directory.
  const folder = mkdtempSync(join(tmpdir(), 'privacy-registry-'));
  const registryFile = join(folder, 'registry.json');
  const catalog = writeLocalCatalog(folder, [{ namespace: 'crm', name: 'customers', columns: { email: 'string' } }]);
  writeFileSync(registryFile, JSON.stringify({ catalog: { type: 'jdbc', name: 'local', ...catalog }, tables: [{ name: 'local.crm.customers', columns: { email: 'email' } }] }));
  directory = await startSlapd();
  api = await startTestService({ PSEUDO_LOG_LEVEL: 'trace', PSEUDO_ERASURE_REGISTRY_FILE: registryFile, ...directory.env });
});
afterAll(async () => {
  await api.close();
  await directory.stop();
});

const SENTINEL_VIN = 'SENTINELVIN7F3A9Q';
const SENTINEL_EMAIL = 'sentinel.person.7f3a@example.org';
const SENTINEL_DIGITS = '99887766554433221100';
const SENTINEL_BAD_KEY = 'pk_abcdefabcdef_SENTINELKEYSENTINELKEYSENTINELKEYSENTINELKEY1';

describe('no identifier, pseudonym or API key reaches logs, metrics or errors', () => {
  it('holds across every endpoint and error path', async () => {
    const { pseudonymize, reidentify, vinOnly } = api.keys;
    const responses: CallResult[] = [];
    const send = async (method: string, path: string, options: Parameters<TestService['call']>[2]) => {
      const res = await api.call(method, path, options);
      responses.push(res);
      return res;
    };
    const made = await send('POST', '/v1/pseudonymize', { apiKey: pseudonymize, body: { context: 'vin', values: [SENTINEL_VIN] } });
    const vinPseudonym = (made.json as { pseudonyms: string[] }).pseudonyms[0]!;
    const email = await send('POST', '/v1/pseudonymize', { apiKey: pseudonymize, body: { context: 'email', values: [SENTINEL_EMAIL], deterministic: false } });
    const emailPseudonym = (email.json as { pseudonyms: string[] }).pseudonyms[0]!;
    const digits = await send('POST', '/v1/pseudonymize', { apiKey: pseudonymize, body: { context: 'account_number', values: [SENTINEL_DIGITS] } });
    const digitsPseudonym = (digits.json as { pseudonyms: string[] }).pseudonyms[0]!;
    const compat = await send('POST', '/pseudonymization?deterministic=true', { apiKey: pseudonymize, body: { identifiers: [SENTINEL_VIN] } });
    expect(compat.status).toBe(200);
    await send('POST', '/v1/reidentify', { apiKey: reidentify, body: { context: 'vin', pseudonyms: [vinPseudonym, vinPseudonym + 'x', SENTINEL_VIN] } });
    await send('POST', '/v1/reidentify', { apiKey: reidentify, body: { context: 'email', pseudonyms: [emailPseudonym] } });
    await send('POST', '/v1/reidentify', { apiKey: reidentify, body: { context: 'account_number', pseudonyms: [digitsPseudonym, SENTINEL_VIN] } });
    await send('POST', '/reidentification', { apiKey: reidentify, body: { reidentifications: [vinPseudonym] } });
    await send('POST', '/reidentification', { apiKey: reidentify, body: { pseudonyms: [vinPseudonym, SENTINEL_EMAIL] } });
    // error paths, each carrying sentinels
    await send('POST', '/v1/pseudonymize', { apiKey: SENTINEL_BAD_KEY, body: { context: 'vin', values: [SENTINEL_VIN] } });
    await send('POST', '/v1/pseudonymize', { apiKey: `${pseudonymize}${SENTINEL_VIN}`, body: { context: 'vin', values: [SENTINEL_VIN] } });
    await send('POST', '/v1/reidentify', { apiKey: pseudonymize, body: { context: 'vin', pseudonyms: [vinPseudonym] } });
    await send('POST', '/v1/pseudonymize', { apiKey: vinOnly, body: { context: 'email', values: [SENTINEL_EMAIL] } });
    await send('POST', '/v1/pseudonymize', { apiKey: pseudonymize, rawBody: `{"context":"vin","values":["${SENTINEL_VIN}"`, contentType: 'application/json' });
    await send('POST', '/v1/pseudonymize', { apiKey: pseudonymize, rawBody: SENTINEL_EMAIL, contentType: 'text/plain' });
    await send('POST', '/v1/pseudonymize', { apiKey: pseudonymize, body: { context: 'vin', values: [SENTINEL_VIN + 'x'.repeat(2000)] } });
    await send('POST', '/v1/pseudonymize', { apiKey: pseudonymize, body: { context: 'account_number', values: [SENTINEL_VIN] } });
    await send('POST', '/v1/pseudonymize', { apiKey: pseudonymize, body: { context: SENTINEL_EMAIL, values: [SENTINEL_VIN] } });
    await send('POST', '/v1/pseudonymize', { apiKey: pseudonymize, body: { context: 'vin', values: [SENTINEL_VIN], [SENTINEL_EMAIL]: 1 } });
    await send('POST', `/pseudonymization?deterministic=${SENTINEL_VIN}`, { apiKey: pseudonymize, body: { identifiers: [SENTINEL_VIN] } });
    await send('POST', `/v1/${SENTINEL_VIN}`, { apiKey: pseudonymize, body: { context: 'vin', values: [SENTINEL_VIN] } });
    await send('GET', `/v1/pseudonymize?q=${SENTINEL_EMAIL}`, { apiKey: pseudonymize, headers: { 'x-request-id': SENTINEL_EMAIL } });
    await send('POST', '/v1/pseudonymize', { apiKey: pseudonymize, rawBody: Buffer.concat([Buffer.from(SENTINEL_VIN), Buffer.alloc(6 * 1024 * 1024)]) });
    const metrics = (await send('GET', '/metrics', {})).text;

    const keyring = JSON.parse(readFileSync(join(api.dataDir, 'keyring.json'), 'utf8')) as { versions: { key: string }[] };
    const rootKeys = keyring.versions.map((v) => v.key).flatMap((b64) => [b64, Buffer.from(b64, 'base64').toString('hex')]);
    const sentinels = [...rootKeys, SENTINEL_VIN, SENTINEL_EMAIL, SENTINEL_DIGITS, vinPseudonym, vinPseudonym.slice(3), emailPseudonym.slice(3), digitsPseudonym, SENTINEL_BAD_KEY, pseudonymize, reidentify, vinOnly, pseudonymize.slice(16), 'SENTINELKEY'];
    const logs = api.logs();
    expect(logs.split('\n').filter((l) => l.includes('"request"')).length).toBeGreaterThanOrEqual(responses.length);
    for (const sentinel of sentinels) {
      expect(logs.includes(sentinel), `log contains ${sentinel.slice(0, 12)}…`).toBe(false);
      expect(metrics.includes(sentinel), `metrics contain ${sentinel.slice(0, 12)}…`).toBe(false);
    }
    const errorBodies = responses.filter((r) => r.status >= 400).map((r) => r.text);
    expect(errorBodies.length).toBeGreaterThanOrEqual(13);
    for (const body of errorBodies) for (const sentinel of sentinels) expect(body.includes(sentinel), `error body contains ${sentinel.slice(0, 12)}…`).toBe(false);
  });
});

/** A body each route accepts, so that the sentinels below reach its validation and beyond. */
const VALID_BODIES: Record<string, unknown> = {
  'POST /v1/pseudonymize': { context: 'vin', values: ['1HGCM82633A004352'] },
  'POST /v1/reidentify': { context: 'vin', pseudonyms: ['s1.AAAA'] },
  'POST /v1/rewrap': { context: 'vin', pseudonyms: ['s1.AAAA'] },
  // Takes no body: whatever is sent is not read.
  'POST /v1/admin/keyring/reload': {},
  'POST /pseudonymization': { identifiers: ['1HGCM82633A004352'] },
  'POST /reidentification': { pseudonyms: ['s1.AAAA'] },
  'POST /compat/contexts/{context}/pseudonymization': { identifiers: ['1HGCM82633A004352'] },
  'POST /compat/contexts/{context}/reidentification': { pseudonyms: ['s1.AAAA'] },
  'POST /v1/login': { username: PEOPLE.steward.username, password: PEOPLE.steward.password },
  'POST /v1/erasure-requests': { reference: 'PRIVACY-1', reason: 'gdpr-art17-1a', subjects: [{ context: 'email', value: 'kept.out@example.org' }] },
  'POST /v1/erasure-lifts': { reference: 'PRIVACY-2', reason: 'consent', subjects: [{ context: 'email', value: 'kept.out@example.org' }] },
  // The reason is free text an officer could fill with anything: never quoted back in an error.
  'POST /v1/erasure-requests/{id}/extension': { reason: 'kept.out@example.org asked for copies first', months: 2 },
};

const ECHOED_FIELDS = new Set(['reference']);

/** Sentinels as keys in every object of a body: top level, and inside the first array item that is an object. */
function withSentinelKeys(body: unknown, key: string, value: string): unknown[] {
  const variants: unknown[] = [];
  if (body && typeof body === 'object' && !Array.isArray(body)) {
    variants.push({ ...body, [key]: value });
    for (const [field, item] of Object.entries(body)) {
      if (Array.isArray(item) && item[0] && typeof item[0] === 'object') variants.push({ ...body, [field]: [{ ...item[0], [key]: value }] });
      if (Array.isArray(item)) variants.push({ ...body, [field]: [value, { [key]: value }] });
      // An erasure request's ticket reference is the officer's own handle and comes back by design.
      if (typeof item === 'string' && !ECHOED_FIELDS.has(field)) variants.push({ ...body, [field]: value });
    }
  }
  variants.push({ [key]: { [value]: key } }, [key, value]);
  return variants;
}

describe('sentinels as keys, query parameters, headers and path segments, on every route of the table', () => {
  it('reach no response body, response header, log line or metric', async () => {
    const officer = await api.createKey('privacy-officer', ['privacy-officer']);
    const rewrapper = await api.createKey('rewrapper', ['rewrap'], ['vin']);
    const admin = await api.createKey('admin', ['admin']);
    const keyFor = (role: string): string | undefined =>
      ({ pseudonymize: api.keys.vinOnly, reidentify: api.keys.reidentify, rewrap: rewrapper, 'privacy-officer': officer, admin })[role];
    const KEY = 'sentinel.key.7f3a@example.org';
    const VALUE = 'SENTINELVALUE7F3A9Q';
    const HEADER = 'x-sentinelheader7f3a';
    const responses: CallResult[] = [];
    const send = async (method: string, path: string, options: Parameters<TestService['call']>[2]) => {
      responses.push(await api.call(method, path, options));
    };
    // A new POST route without a valid body here would only be probed at its front door.
    expect(ROUTES.filter((route) => route.method === 'POST').map((route) => `POST ${route.path}`).filter((key) => !(key in VALID_BODIES))).toEqual([]);
    for (const route of ROUTES) {
      const apiKey = keyFor(route.role);
      const path = route.path.replace(/\{\w+\}/g, encodeURIComponent(KEY));
      const declaredQuery = route.querySchema instanceof z.ZodObject ? Object.keys(route.querySchema.shape) : [];
      const queries = [`${encodeURIComponent(KEY)}=${VALUE}`, `${VALUE}=${encodeURIComponent(KEY)}`, ...declaredQuery.map((name) => `${name}=${encodeURIComponent(KEY)}`)];
      // A well-formed x-request-id is echoed by design (correlation); an e-mail-shaped one is replaced.
      const headers = { [HEADER]: VALUE, 'x-request-id': KEY, 'user-agent': KEY, 'x-forwarded-for': KEY };
      const bodies = route.method === 'POST' ? withSentinelKeys(VALID_BODIES[`${route.method} ${route.path}`], KEY, VALUE) : [undefined];
      for (const body of bodies) await send(route.method, path, { apiKey, body, headers });
      for (const query of queries) await send(route.method, `${path}?${query}`, { apiKey, body: route.method === 'POST' ? VALID_BODIES[`${route.method} ${route.path}`] : undefined, headers });
      await send(route.method, path, { apiKey: `pk_${VALUE}_${KEY}`, headers });
      await send(route.method, path, { headers: { ...headers, authorization: `Bearer ${VALUE}.${KEY}` } });
      if (route.method === 'POST') {
        await send(route.method, path, { apiKey, rawBody: JSON.stringify({ [KEY]: VALUE }), contentType: `application/json; ${KEY}=${VALUE}` });
        await send(route.method, path, { apiKey, rawBody: `{"${KEY}": "${VALUE}"`, contentType: 'application/json' });
      }
    }
    expect(responses.length).toBeGreaterThan(ROUTES.length * 5);
    // The routes' own checks ran, not only the front door: validation refusals of every kind.
    expect(responses.filter((r) => r.status === 400).length).toBeGreaterThan(ROUTES.length);
    const metrics = (await api.call('GET', '/metrics')).text;
    const logs = api.logs();
    for (const sentinel of [KEY, VALUE, 'sentinel.key', 'SENTINELVALUE', 'sentinelheader']) {
      expect(logs.includes(sentinel), `log contains ${sentinel}`).toBe(false);
      expect(metrics.includes(sentinel), `metrics contain ${sentinel}`).toBe(false);
      for (const response of responses) {
        expect(response.text.includes(sentinel), `a response body contains ${sentinel}: ${response.text.slice(0, 200)}`).toBe(false);
        for (const [name, value] of response.headers.entries()) expect(`${name}: ${value}`.includes(sentinel), `a response header contains ${sentinel}`).toBe(false);
      }
    }
  });
});
