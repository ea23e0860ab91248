/** The HTTP API over real HTTP on 127.0.0.1. Every response is also checked against api/openapi.json. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiKeyRegistry } from '../../api/auth/apiKeys.ts';
import { apiKeyDocumentsFor } from '../../api/auth/fromConfig.ts';
import { startTestService, withTestService, type TestService } from '../support/service.ts';

let api: TestService;
beforeAll(async () => {
  api = await startTestService();
});
afterAll(async () => {
  await api.close();
});

const VINS = ['1HGCM82633A004352', 'WVWZZZ1JZXW000001', 'JH4KA7561PC008269'];
interface Pseudonymized { pseudonyms: (string | null)[]; keyVersion: number }
interface Reidentified { values: (string | null)[]; errors: { index: number; reason: string }[] }
interface Problem { type: string; status: number; detail?: string; errors?: { index: number; reason: string }[] }

describe('pseudonymize and reidentify', () => {
  it('returns pseudonyms in input order with nulls kept, and reidentifies them for a steward', async () => {
    const values = [VINS[0], null, VINS[1], VINS[0]];
    const res = await api.call('POST', '/v1/pseudonymize', { apiKey: api.keys.pseudonymize, body: { context: 'vin', values } });
    expect(res.status).toBe(200);
    const body = res.json as Pseudonymized;
    expect(body.keyVersion).toBe(1);
    expect(body.pseudonyms[1]).toBeNull();
    expect(body.pseudonyms[0]).toBe(body.pseudonyms[3]);
    expect(body.pseudonyms[0]).toMatch(/^s1\.[A-Za-z0-9_-]+$/);
    const back = await api.call('POST', '/v1/reidentify', { apiKey: api.keys.reidentify, body: { context: 'vin', pseudonyms: body.pseudonyms } });
    expect(back.status).toBe(200);
    expect(back.json).toEqual({ values, errors: [] });
  });

  it('reports per-item reidentify errors without failing the batch', async () => {
    const good = ((await api.call('POST', '/v1/pseudonymize', { apiKey: api.keys.pseudonymize, body: { context: 'vin', values: [VINS[2]] } })).json as Pseudonymized).pseudonyms[0]!;
    const tampered = good.slice(0, -2) + (good.endsWith('AA') ? 'BA' : 'AA');
    const res = await api.call('POST', '/v1/reidentify', { apiKey: api.keys.reidentify, body: { context: 'vin', pseudonyms: [good, tampered, 'junk', null] } });
    expect(res.status).toBe(200);
    const body = res.json as Reidentified;
    expect(body.values).toEqual([VINS[2], null, null, null]);
    expect(body.errors.map((e) => [e.index, e.reason])).toEqual([[1, 'authentication-failed'], [2, 'malformed']]);
  });

  it('gives randomized pseudonyms on request, only for deterministic-transform contexts', async () => {
    const res = await api.call('POST', '/v1/pseudonymize', { apiKey: api.keys.pseudonymize, body: { context: 'vin', values: [VINS[0], VINS[0]], deterministic: false } });
    const [a, b] = (res.json as Pseudonymized).pseudonyms;
    expect(a).not.toBe(b);
    const hash = await api.call('POST', '/v1/pseudonymize', { apiKey: api.keys.pseudonymize, body: { context: 'device_id', values: ['d'], deterministic: false } });
    expect(hash.status).toBe(400);
    expect((hash.json as Problem).type).toBe('urn:pseudonymization:problem:unsupported-mode');
  });

  it('FF1 contexts keep the shape and reidentify with the reported key version', async () => {
    const res = await api.call('POST', '/v1/pseudonymize', { apiKey: api.keys.pseudonymize, body: { context: 'account_number', values: ['4111111111111111'] } });
    const { pseudonyms, keyVersion } = res.json as Pseudonymized;
    expect(pseudonyms[0]).toMatch(/^\d{16}$/);
    const back = await api.call('POST', '/v1/reidentify', { apiKey: api.keys.reidentify, body: { context: 'account_number', pseudonyms, keyVersion } });
    expect((back.json as Reidentified).values).toEqual(['4111111111111111']);
  });
});

describe('authentication and roles', () => {
  it('401 without a key, with a wrong key, a malformed key; 403 for a missing role or context', async () => {
    const body = { context: 'vin', values: ['x'] };
    const statuses = await Promise.all([
      api.call('POST', '/v1/pseudonymize', { body }),
      api.call('POST', '/v1/pseudonymize', { body, apiKey: 'pk_000000000000_' + 'A'.repeat(43) }),
      api.call('POST', '/v1/pseudonymize', { body, apiKey: 'not-a-key' }),
      api.call('POST', '/v1/reidentify', { body: { context: 'vin', pseudonyms: [] }, apiKey: api.keys.pseudonymize }),
      api.call('POST', '/v1/pseudonymize', { body: { context: 'email', values: ['x'] }, apiKey: api.keys.vinOnly }),
      api.call('POST', '/v1/pseudonymize', { body, apiKey: api.keys.vinOnly }),
    ]);
    expect(statuses.map((r) => r.status)).toEqual([401, 401, 401, 403, 403, 200]);
    expect(statuses[0].headers.get('www-authenticate')).toContain('x-api-key');
  });

  it('tells a caller that sent its API key as a bearer token where the key belongs, without echoing it', async () => {
    const answer = await api.call('POST', '/v1/pseudonymize', { body: { context: 'vin', values: ['x'] }, headers: { authorization: `Bearer ${api.keys.pseudonymize}` } });
    expect(answer.status).toBe(401);
    expect(answer.text).toContain('x-api-key header');
    expect(answer.text).not.toContain(api.keys.pseudonymize);
  });

  it('accepts a new key within a second and stops accepting it within the refresh period once revoked', async () => {
    const key = await api.createKey('short-lived', ['pseudonymize']);
    await new Promise((r) => setTimeout(r, 1100));
    const body = { context: 'vin', values: ['x'] };
    expect((await api.call('POST', '/v1/pseudonymize', { body, apiKey: key })).status).toBe(200);
    const registry = new ApiKeyRegistry(apiKeyDocumentsFor(api.config.apiKeys));
    await registry.revoke(key.slice(3, 15));
    await new Promise((r) => setTimeout(r, 1200));
    expect((await api.call('POST', '/v1/pseudonymize', { body, apiKey: key })).status).toBe(401);
  });
});

describe('bad input gets a problem+json with a stable type, never a 500', () => {
  const key = () => api.keys.pseudonymize;
  const cases: [string, () => Parameters<TestService['call']>[2], number, string][] = [
    ['text/plain body', () => ({ apiKey: key(), rawBody: '{}', contentType: 'text/plain' }), 415, 'unsupported-media-type'],
    ['no content type', () => ({ apiKey: key(), rawBody: '{}', contentType: null }), 415, 'unsupported-media-type'],
    ['malformed JSON', () => ({ apiKey: key(), rawBody: '{"context": "vin", "values": [' }), 400, 'malformed-json'],
    ['values not an array', () => ({ apiKey: key(), body: { context: 'vin', values: 'x' } }), 400, 'validation-failed'],
    ['a number among values', () => ({ apiKey: key(), body: { context: 'vin', values: ['a', 7] } }), 400, 'validation-failed'],
    ['unknown field', () => ({ apiKey: key(), body: { context: 'vin', values: [], extra: 1 } }), 400, 'validation-failed'],
    ['missing context', () => ({ apiKey: key(), body: { values: [] } }), 400, 'validation-failed'],
    ['unknown context', () => ({ apiKey: key(), body: { context: 'nope', values: ['a'] } }), 400, 'unknown-context'],
    ['bad context name', () => ({ apiKey: key(), body: { context: '../etc', values: ['a'] } }), 400, 'validation-failed'],
    ['too many values', () => ({ apiKey: key(), body: { context: 'vin', values: Array(10_001).fill('a') } }), 400, 'validation-failed'],
    ['value too long', () => ({ apiKey: key(), body: { context: 'vin', values: ['a'.repeat(2000)] } }), 400, 'validation-failed'],
    ['FF1 value outside alphabet', () => ({ apiKey: key(), body: { context: 'account_number', values: ['12345x7'] } }), 400, 'validation-failed'],
    ['body over 6 MiB', () => ({ apiKey: key(), rawBody: Buffer.alloc(6 * 1024 * 1024 + 1, 0x20) }), 413, 'payload-too-large'],
  ];
  it.each(cases)('%s', async (_name, options, status, type) => {
    const res = await api.call('POST', '/v1/pseudonymize', options());
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect((res.json as Problem).type).toBe(`urn:pseudonymization:problem:${type}`);
  });

  it('points at bad items by index', async () => {
    const res = await api.call('POST', '/v1/pseudonymize', { apiKey: api.keys.pseudonymize, body: { context: 'account_number', values: ['123456', '1', '123456789'] } });
    expect((res.json as Problem).errors).toEqual([{ index: 1, reason: 'is shorter than 6 characters, the FF1 minimum for this alphabet' }]);
  });

  it('404 for unknown routes, 405 with Allow for a wrong method', async () => {
    const missing = await api.call('GET', '/v2/anything');
    expect(missing.status).toBe(404);
    const wrong = await api.call('GET', '/v1/pseudonymize');
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('POST');
  });
});

describe('compatibility with the AWS sample service clients', () => {
  it('POST /pseudonymization?deterministic=True {identifiers} -> {pseudonyms}, equal to v1 for the compat context', async () => {
    const compat = await api.call('POST', '/pseudonymization?deterministic=True', { apiKey: api.keys.pseudonymize, body: { identifiers: VINS } });
    expect(compat.status).toBe(200);
    const v1 = await api.call('POST', '/v1/pseudonymize', { apiKey: api.keys.pseudonymize, body: { context: 'vin', values: VINS } });
    expect(compat.json).toEqual({ pseudonyms: (v1.json as Pseudonymized).pseudonyms });
    const randomized = await api.call('POST', '/pseudonymization?deterministic=false', { apiKey: api.keys.pseudonymize, body: { identifiers: VINS } });
    expect((randomized.json as { pseudonyms: string[] }).pseudonyms[0]).toMatch(/^r1\./);
    const bad = await api.call('POST', '/pseudonymization?deterministic=maybe', { apiKey: api.keys.pseudonymize, body: { identifiers: VINS } });
    expect(bad.status).toBe(400);
  });

  it('POST /reidentification accepts {pseudonyms} and {reidentifications}, answers {identifiers}, and 422 when any item fails', async () => {
    const { pseudonyms } = (await api.call('POST', '/pseudonymization', { apiKey: api.keys.pseudonymize, body: { identifiers: VINS } })).json as { pseudonyms: string[] };
    for (const field of ['pseudonyms', 'reidentifications']) {
      const res = await api.call('POST', '/reidentification', { apiKey: api.keys.reidentify, body: { [field]: pseudonyms } });
      expect(res.json).toEqual({ identifiers: VINS });
    }
    const failing = await api.call('POST', '/reidentification', { apiKey: api.keys.reidentify, body: { pseudonyms: [pseudonyms[0], 'junk'] } });
    expect(failing.status).toBe(422);
    expect((failing.json as Problem).errors).toEqual([{ index: 1, reason: 'malformed' }]);
  });
});

describe('operations endpoints', () => {
  it('health, readiness, the OpenAPI document and Prometheus metrics with the cache hit ratio', async () => {
    expect((await api.call('GET', '/healthz')).json).toEqual({ status: 'ok' });
    expect((await api.call('GET', '/readyz')).json).toEqual({ status: 'ready', keyVersion: 1 });
    const doc = await api.call('GET', '/openapi.json');
    expect((doc.json as { openapi: string }).openapi).toBe('3.1.0');
    const metrics = (await api.call('GET', '/metrics')).text;
    expect(metrics).toMatch(/pseudo_cache_hit_ratio \d/);
    expect(metrics).toMatch(/pseudo_http_requests_total\{route="\/v1\/pseudonymize",method="POST",status="200"\} \d+/);
    expect(metrics).toMatch(/pseudo_values_processed_total\{operation="pseudonymize",context="vin"\} \d+/);
    expect(metrics).toMatch(/pseudo_http_request_duration_seconds_bucket/);
  });
});

describe('a service whose keyring cannot load', () => {
  it('is live but not ready, and answers 503 instead of 500', async () => {
    await withTestService({ PSEUDO_KEYRING: 'aws', PSEUDO_KEYRING_SECRET_ID: 'x', PSEUDO_KMS_KEY_ID: 'y', PSEUDO_AWS_ENDPOINT: 'http://127.0.0.1:9', AWS_ACCESS_KEY_ID: 't', AWS_SECRET_ACCESS_KEY: 't' }, async (broken) => {
      expect((await broken.call('GET', '/healthz')).status).toBe(200);
      const ready = await broken.call('GET', '/readyz');
      expect(ready.status).toBe(503);
      expect(ready.headers.get('retry-after')).toBe('5');
      const res = await broken.call('POST', '/v1/pseudonymize', { apiKey: broken.keys.pseudonymize, body: { context: 'vin', values: ['x'] } });
      expect(res.status).toBe(503);
      expect((res.json as Problem).type).toBe('urn:pseudonymization:problem:keyring-unavailable');
    });
  });
});

describe('request bodies must be UTF-8', () => {
  it('rejects invalid UTF-8 instead of replacing it, since two inputs would then share a pseudonym', async () => {
    const raw = Buffer.concat([Buffer.from('{"context":"vin","values":["ab'), Buffer.from([0xff, 0xfe]), Buffer.from('"]}')]);
    const res = await api.call('POST', '/v1/pseudonymize', { apiKey: api.keys.pseudonymize, rawBody: raw });
    expect(res.status).toBe(400);
    expect((res.json as Problem).type).toBe('urn:pseudonymization:problem:malformed-json');
  });
});
