/**
 * What fuzzing and hand-made bad input found at the edges of the API (issue 16), each pinned over
 * real HTTP: audit entries hold only validated, bounded values; the request line carries the value
 * count; a session token issued in the future is refused; header fields too large answer a
 * documented 431; reidentify without a loaded keyring is a 503 like pseudonymize.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../api/observability/logger.ts';
import { startTestService, withTestService, type TestService } from '../support/service.ts';

let api: TestService;
beforeAll(async () => {
  api = await startTestService();
});
afterAll(async () => {
  await api.close();
});

interface Problem { type: string; status: number }
interface LogLine { msg: string; audit?: boolean; action?: string; outcome?: string; context?: string; reason?: string; route?: string; valueCount?: number; values?: unknown }

function logLines(service: TestService): { text: string; line: LogLine }[] {
  return service
    .logs()
    .split('\n')
    .filter((text) => text !== '')
    .map((text) => ({ text, line: JSON.parse(text) as LogLine }));
}

describe('audit entries hold only validated, bounded values', () => {
  it('a 1 MiB or identifying context on reidentify (400 and 403) is audited as "other", in a short line', async () => {
    const scoped = await api.createKey('steward-vin-only', ['reidentify'], ['vin']);
    await new Promise((resolve) => setTimeout(resolve, 1100)); // the registry refreshes every second in tests
    const huge = 'c'.repeat(1024 * 1024);
    const cases = [
      { apiKey: api.keys.reidentify, context: huge, status: 400 },
      { apiKey: scoped, context: huge, status: 403 },
      { apiKey: api.keys.reidentify, context: 'jane@example.com', status: 400 },
      { apiKey: scoped, context: 'jane@example.com', status: 403 },
    ];
    for (const { apiKey, context, status } of cases) {
      const res = await api.call('POST', '/v1/reidentify', { apiKey, body: { context, pseudonyms: ['x'] } });
      expect(res.status).toBe(status);
    }
    const audit = logLines(api).filter(({ line }) => line.audit === true && line.action === 'reidentify' && line.outcome !== 'success');
    expect(audit.length).toBeGreaterThanOrEqual(cases.length);
    for (const { text, line } of audit) {
      expect(line.context).toBe('other');
      expect(text.length).toBeLessThan(1024);
    }
    expect(api.logs()).not.toContain('jane@example.com');
    expect(Math.max(...logLines(api).map(({ text }) => text.length))).toBeLessThan(4096);
  });
});

describe('the request log line', () => {
  it('carries the number of values under valueCount, while a field named values is still redacted', async () => {
    const requestId = `count-${randomUUID()}`;
    const res = await api.call('POST', '/v1/pseudonymize', { apiKey: api.keys.pseudonymize, headers: { 'x-request-id': requestId }, body: { context: 'vin', values: ['a', 'b', null] } });
    expect(res.status).toBe(200);
    const line = logLines(api).find(({ line: l }) => l.msg === 'request' && l.route === '/v1/pseudonymize' && l.valueCount === 3);
    expect(line, 'a request line with valueCount 3').toBeDefined();
    expect(api.logs()).not.toContain('"values":"[redacted]"');
    const lines: string[] = [];
    createLogger('info', { write: (text: string) => void lines.push(text) }).info({ values: ['an identifier'] }, 'careless call site');
    expect(lines.join('')).toContain('"values":"[redacted]"');
  });
});

describe('session tokens', () => {
  async function token(issuedAt: number): Promise<string> {
    const key = api.running.service.keyring.active();
    return new SignJWT({ roles: ['reidentify'] })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: String(key.version) })
      .setSubject('steve')
      .setIssuer('pseudonymization-api')
      .setAudience('pseudonymization-api')
      .setIssuedAt(issuedAt)
      .setExpirationTime(issuedAt + 900)
      .setJti(randomUUID())
      .sign(key.sessionKey());
  }
  const reidentifyWith = async (bearer: string) => api.call('POST', '/v1/reidentify', { headers: { authorization: `Bearer ${bearer}` }, body: { context: 'vin', pseudonyms: [] } });

  it('are refused when issued in the future beyond a few seconds of clock skew', async () => {
    const now = Math.floor(Date.now() / 1000);
    expect((await reidentifyWith(await token(now))).status).toBe(200);
    expect((await reidentifyWith(await token(now + 2))).status).toBe(200);
    for (const ahead of [60, 3600, 86_400 * 365]) {
      const res = await reidentifyWith(await token(now + ahead));
      expect(res.status, `${ahead} s ahead`).toBe(401);
      expect((res.json as Problem).type).toBe('urn:pseudonymization:problem:unauthenticated');
    }
  });
});

describe('statuses the HTTP layer answers itself are documented', () => {
  it('header fields over 16 KiB: 431 problem+json, as documented for every operation', async () => {
    const res = await api.call('POST', '/v1/pseudonymize', { apiKey: api.keys.pseudonymize, headers: { 'x-padding': 'p'.repeat(20_000) }, body: { context: 'vin', values: ['a'] } });
    expect(res.status).toBe(431);
    expect((res.json as Problem).type).toBe('urn:pseudonymization:problem:headers-too-large');
    const health = await api.call('GET', '/healthz', { headers: { 'x-padding': 'p'.repeat(20_000) } });
    expect(health.status).toBe(431);
  });

  it('the document lists 431 on every operation, 413 on sign-in and describes 405 with Allow', () => {
    const document = JSON.parse(readFileSync('api/openapi.json', 'utf8')) as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>>; components: { responses: Record<string, { headers?: Record<string, unknown> }> } };
    for (const [path, operations] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(operations)) expect(Object.keys(operation.responses), `${method} ${path}`).toContain('431');
    }
    expect(Object.keys(document.paths['/v1/login']!.post!.responses)).toContain('413');
    expect(document.components.responses.MethodNotAllowed?.headers).toHaveProperty('Allow');
  });
});

describe('a service whose keyring is not loaded', () => {
  it('answers reidentify with 503 keyring-unavailable, like pseudonymize, and audits the failure', async () => {
    const unreachable = { PSEUDO_KEYRING: 'aws', PSEUDO_KEYRING_SECRET_ID: 'x', PSEUDO_KMS_KEY_ID: 'y', PSEUDO_AWS_ENDPOINT: 'http://127.0.0.1:9', AWS_ACCESS_KEY_ID: 't', AWS_SECRET_ACCESS_KEY: 't' };
    await withTestService(unreachable, async (broken) => {
      const calls = [
        broken.call('POST', '/v1/reidentify', { apiKey: broken.keys.reidentify, body: { context: 'vin', pseudonyms: ['s1.AAAA', null] } }),
        broken.call('POST', '/v1/reidentify', { apiKey: broken.keys.reidentify, body: { context: 'account_number', pseudonyms: ['1234567'], keyVersion: 1 } }),
        broken.call('POST', '/reidentification', { apiKey: broken.keys.reidentify, body: { pseudonyms: ['s1.AAAA'] } }),
        broken.call('POST', '/v1/pseudonymize', { apiKey: broken.keys.pseudonymize, body: { context: 'vin', values: ['x'] } }),
      ];
      for (const res of await Promise.all(calls)) {
        expect(res.status).toBe(503);
        expect((res.json as Problem).type).toBe('urn:pseudonymization:problem:keyring-unavailable');
      }
      const audit = logLines(broken).filter(({ line }) => line.audit === true && line.action === 'reidentify');
      expect(audit.map(({ line }) => [line.outcome, line.reason])).toEqual([
        ['failure', 'keyring-unavailable'],
        ['failure', 'keyring-unavailable'],
        ['failure', 'keyring-unavailable'],
      ]);
    });
  });
});
