/**
 * Privacy by default: sentinel identifiers, pseudonyms and API keys go through every endpoint,
 * including every error path; none may appear in any log line (captured at trace level), in the
 * metrics, or in an error response.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type CallResult, type TestService } from '../support/service.ts';

let api: TestService;
beforeAll(async () => {
  api = await startTestService({ PSEUDO_LOG_LEVEL: 'trace' });
});
afterAll(async () => {
  await api?.close();
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
    await send('POST', '/v1/pseudonymize', { apiKey: pseudonymize, rawBody: `${SENTINEL_EMAIL}`, contentType: 'text/plain' });
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
