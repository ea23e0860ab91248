/** Erasure requests over HTTP: filing, idempotency, reading, roles, validation, and reidentify answering `erased`. */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../support/service.ts';
import { writeTestRegistry } from '../support/catalog.ts';

const JANE = 'sentinel.jane@example.com';
const JOHN = 'sentinel.john@example.com';

function registryFile(): string {
  return writeTestRegistry([
    { namespace: 'crm', name: 'customers', columns: { id: 'long', email: 'string' }, contexts: { email: 'email' } },
    { namespace: 'fleet', name: 'vehicles', columns: { vin: 'string', km: 'long' }, contexts: { vin: 'vin' } },
  ]);
}

describe('erasure requests over HTTP', () => {
  let service: TestService;
  let officer: string;
  const file = (body: unknown, apiKey = officer) => service.call('POST', '/v1/erasure-requests', { apiKey, body });

  beforeAll(async () => {
    // The runner is not started in these tests: requests stay `received`.
    service = await startTestService({ PSEUDO_ERASURE_REGISTRY_FILE: registryFile() });
    officer = await service.createKey('officer', ['privacy-officer']);
  });
  afterAll(async () => service.close());

  it('files a request by identifier (202), and the same subject and reference again returns it (200), even by pseudonym', async () => {
    // Taken before filing: once filed, pseudonymize no longer hands out Jane's pseudonym (test/erasure/ingestion.test.ts).
    const pseudonym = ((await service.call('POST', '/v1/pseudonymize', { apiKey: service.keys.pseudonymize, body: { context: 'email', values: [JANE] } })).json as { pseudonyms: string[] }).pseudonyms[0]!;
    const first = await file({ reference: 'GDPR-2026-001', reason: 'gdpr-art17-1a', subjects: [{ context: 'email', value: JANE }] });
    expect(first.status).toBe(202);
    const request = first.json as { id: string; status: string; subjects: unknown; tables: unknown };
    expect(request).toMatchObject({ status: 'received', reference: 'GDPR-2026-001', subjects: { count: 1, contexts: ['email'] }, tables: [{ table: 'local.crm.customers', status: 'pending' }] });
    expect(first.headers.get('location')).toBe(`/v1/erasure-requests/${request.id}`);

    const again = await file({ reference: 'GDPR-2026-001', reason: 'gdpr-art17-1a', subjects: [{ context: 'email', pseudonym }] });
    expect(again.status).toBe(200);
    expect((again.json as { id: string }).id).toBe(request.id);

    const other = await file({ reference: 'GDPR-2026-001', reason: 'gdpr-art17-1a', subjects: [{ context: 'email', value: 'sentinel.other@example.com' }] });
    expect(other.status).toBe(202);
    expect((other.json as { id: string }).id).not.toBe(request.id);

    const read = await service.call('GET', `/v1/erasure-requests/${request.id}`, { apiKey: officer });
    expect(read.status).toBe(200);
    expect(read.json).toEqual(first.json);
  });

  it('answers reidentify with `erased` for a filed subject, under any token of theirs, and not for others', async () => {
    const deterministic = ((await service.call('POST', '/v1/pseudonymize', { apiKey: service.keys.pseudonymize, body: { context: 'email', values: [JOHN, 'sentinel.kept@example.com'] } })).json as { pseudonyms: string[] }).pseudonyms;
    const randomized = ((await service.call('POST', '/v1/pseudonymize', { apiKey: service.keys.pseudonymize, body: { context: 'email', values: [JOHN], deterministic: false } })).json as { pseudonyms: string[] }).pseudonyms;
    await file({ reference: 'GDPR-2026-002', reason: 'gdpr-art17-1b', subjects: [{ context: 'email', value: JOHN }] });
    const answer = await service.call('POST', '/v1/reidentify', { apiKey: service.keys.reidentify, body: { context: 'email', pseudonyms: [deterministic[0], randomized[0], deterministic[1]] } });
    expect(answer.json).toEqual({ values: [null, null, 'sentinel.kept@example.com'], errors: [{ index: 0, reason: 'erased' }, { index: 1, reason: 'erased' }] });
  });

  it('lists requests, by status too', async () => {
    const all = (await service.call('GET', '/v1/erasure-requests', { apiKey: officer })).json as { requests: { status: string }[] };
    expect(all.requests.length).toBeGreaterThanOrEqual(3);
    const received = (await service.call('GET', '/v1/erasure-requests?status=received', { apiKey: officer })).json as { requests: { status: string }[] };
    expect(received.requests.every((r) => r.status === 'received')).toBe(true);
    expect((await service.call('GET', '/v1/erasure-requests?status=verified', { apiKey: officer })).json).toEqual({ requests: [] });
    const bad = await service.call('GET', '/v1/erasure-requests?status=done', { apiKey: officer });
    expect(bad.status).toBe(400);
  });

  it.each([
    [{ reference: 'T-1', reason: 'gdpr-art17-1a', subjects: [{ context: 'nope', value: JANE }] }, 400, 'urn:pseudonymization:problem:unknown-context', 'the context is not configured'],
    [{ reference: 'T-1', reason: 'gdpr-art17-1a', subjects: [{ context: 'email', value: '' }] }, 400, 'urn:pseudonymization:problem:validation-failed', 'subjects[0].value: must not be empty'],
    [{ reference: 'T-1', subjects: [{ context: 'email', value: JANE }] }, 400, 'urn:pseudonymization:problem:validation-failed', 'reason: one of gdpr-art17-1a'],
    [{ reference: 'T-1', reason: 'because', subjects: [{ context: 'email', value: JANE }] }, 400, 'urn:pseudonymization:problem:validation-failed', 'reason: one of'],
    [{ reference: 'T-1', reason: 'gdpr-art17-1a', subjects: [{ context: 'email', pseudonym: 's1.not-a-real-one' }] }, 400, 'urn:pseudonymization:problem:validation-failed', 'subjects[0].pseudonym: cannot be resolved (malformed'],
    [{ reference: 'T-1', reason: 'gdpr-art17-1a', subjects: [] }, 400, 'urn:pseudonymization:problem:validation-failed', 'subjects: at least one'],
    [{ reference: 'Jane Doe asked', reason: 'gdpr-art17-1a', subjects: [{ context: 'email', value: JANE }] }, 400, 'urn:pseudonymization:problem:validation-failed', 'reference: a ticket reference'],
  ])('refuses a bad filing with a problem naming the field (%#)', async (body, status, type, detail) => {
    const answer = await file(body);
    expect(answer.status).toBe(status);
    expect((answer.json as { type: string }).type).toBe(type);
    expect((answer.json as { detail: string }).detail).toContain(detail);
    expect(answer.text).not.toContain('sentinel');
  });

  it('never quotes caller input in a refusal: an unknown key, in the body or in a subject, is not named', async () => {
    const key = 'jane.doe@example.com';
    for (const body of [
      { reference: 'T-3', reason: 'gdpr-art17-1a', subjects: [{ context: 'email', value: JANE }], [key]: 1 },
      { reference: 'T-3', reason: 'gdpr-art17-1a', subjects: [{ context: 'email', value: JANE, [key]: 1 }] },
      { reference: 'T-3', reason: key, subjects: [{ context: 'email', value: JANE }] },
      { reference: key, reason: 'gdpr-art17-1a', subjects: [{ context: key, pseudonym: key }] },
    ]) {
      const answer = await file(body);
      expect(answer.status).toBe(400);
      expect((answer.json as { type: string }).type).toMatch(/validation-failed|unknown-context/);
      expect(answer.text).not.toContain('jane');
      expect(answer.text).not.toContain('sentinel');
    }
    const unknownKey = await file({ reference: 'T-3', reason: 'gdpr-art17-1a', subjects: [{ context: 'email', value: JANE }], [key]: 1 });
    expect((unknownKey.json as { detail: string }).detail).toBe('body: has fields this operation does not take');
  });

  it('needs the privacy-officer role: 401 without a key, 403 with another role, 404 for an unknown id', async () => {
    const body = { reference: 'T-2', reason: 'gdpr-art17-1a', subjects: [{ context: 'email', value: JANE }] };
    expect((await service.call('POST', '/v1/erasure-requests', { body })).status).toBe(401);
    expect((await file(body, service.keys.reidentify)).status).toBe(403);
    expect((await file(body, service.keys.pseudonymize)).status).toBe(403);
    expect((await service.call('GET', '/v1/erasure-requests', { apiKey: service.keys.reidentify })).status).toBe(403);
    expect((await service.call('GET', '/v1/erasure-requests/er-00000000-0000-0000-0000-000000000000', { apiKey: officer })).status).toBe(404);
    expect((await service.call('GET', '/v1/erasure-requests/anything', { apiKey: officer })).status).toBe(404);
  });

  it('keeps no identifier in the ledger or the logs, and the audit chain holds', async () => {
    const ledger = readFileSync(service.config.erasure.ledgerFile);
    for (const sentinel of [JANE, JOHN, 'sentinel']) expect(ledger.includes(Buffer.from(sentinel))).toBe(false);
    expect(service.logs()).not.toContain('sentinel');
    const { verifyAuditChain } = await import('../../api/erasure/ledger.ts');
    const { SqliteErasureLedger } = await import('../../api/erasure/sqliteLedger.ts');
    const reader = new SqliteErasureLedger(service.config.erasure.ledgerFile);
    expect(verifyAuditChain(await reader.auditEntries())).toMatchObject({ valid: true });
    expect((await reader.auditEntries()).every((e) => e.action === 'erasure.filed' && e.actor.startsWith('api-key:'))).toBe(true);
    await reader.close();
  });
});
