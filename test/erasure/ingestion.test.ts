/**
 * Suppression at ingestion over HTTP: once a subject's erasure is filed, pseudonymize does not hand out a
 * usable pseudonym for them. v1 answers null at that index and lists it in `erased`; the compatibility route,
 * whose shape has no room for that, refuses the batch (422 subject-erased) naming indexes only.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTestRegistry } from '../support/catalog.ts';
import { startTestService, type TestService } from '../support/service.ts';

const JANE = 'sentinel.jane@example.com';
const VIN = 'SENTINEL0VIN00042';

function registryFile(): string {
  return writeTestRegistry([
    { namespace: 'crm', name: 'customers', columns: { email: 'string' }, contexts: { email: 'email' } },
    { namespace: 'fleet', name: 'vehicles', columns: { vin: 'string' }, contexts: { vin: 'vin' } },
  ]);
}

describe('suppression at ingestion', () => {
  let service: TestService;
  let officer: string;
  const pseudonymize = (body: unknown) => service.call('POST', '/v1/pseudonymize', { apiKey: service.keys.pseudonymize, body });

  beforeAll(async () => {
    service = await startTestService({ PSEUDO_ERASURE_REGISTRY_FILE: registryFile(), PSEUDO_COMPAT_CONTEXT: 'vin' });
    officer = await service.createKey('officer', ['privacy-officer']);
    for (const subject of [{ context: 'email', value: JANE }, { context: 'vin', value: VIN }]) {
      const filed = await service.call('POST', '/v1/erasure-requests', { apiKey: officer, body: { reference: `DSR-${subject.context}`, reason: 'gdpr-art17-1a', subjects: [subject] } });
      expect(filed.status).toBe(202);
    }
  });
  afterAll(async () => service.close());

  it('answers null and lists the index in `erased` for a filed subject, deterministic or not; others are pseudonymized as before', async () => {
    const before = (await pseudonymize({ context: 'email', values: ['sentinel.kept@example.com'] })).json as { pseudonyms: string[] };
    for (const deterministic of [true, false]) {
      const answer = await pseudonymize({ context: 'email', values: ['sentinel.kept@example.com', JANE, null, JANE], deterministic });
      expect(answer.status).toBe(200);
      const body = answer.json as { pseudonyms: (string | null)[]; keyVersion: number; erased: number[] };
      expect(body.erased).toEqual([1, 3]);
      expect(body.pseudonyms.slice(1)).toEqual([null, null, null]);
      if (deterministic) expect(body.pseudonyms[0]).toBe(before.pseudonyms[0]);
      expect(answer.text).not.toContain('sentinel.jane');
    }
    // No erased value in the batch: the answer has its old shape.
    expect(Object.keys((await pseudonymize({ context: 'email', values: ['sentinel.kept@example.com'] })).json as object).sort()).toEqual(['keyVersion', 'pseudonyms']);
    // The same identifier in another context is another subject.
    expect(((await pseudonymize({ context: 'vin', values: [JANE] })).json as { pseudonyms: string[] }).pseudonyms[0]).toMatch(/^s1\./);
  });

  it('keeps a batch of 10,000 values with some suppressed ones one call', async () => {
    const values = Array.from({ length: 10_000 }, (_, i) => (i % 2500 === 7 ? JANE : `sentinel.user${i}@example.com`));
    const answer = await pseudonymize({ context: 'email', values });
    expect(answer.status).toBe(200);
    const body = answer.json as { pseudonyms: (string | null)[]; erased: number[] };
    expect(body.erased).toEqual([7, 2507, 5007, 7507]);
    expect(body.pseudonyms.filter((p) => p === null)).toHaveLength(4);
  });

  it('refuses a compatibility batch holding a filed subject with 422 subject-erased, naming indexes only', async () => {
    const answer = await service.call('POST', '/pseudonymization', { apiKey: service.keys.pseudonymize, body: { identifiers: ['SENTINEL0VIN00001', VIN] } });
    expect(answer.status).toBe(422);
    expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(answer.json).toMatchObject({ type: 'urn:pseudonymization:problem:subject-erased', errors: [{ index: 1, reason: 'erased' }] });
    expect(answer.text).not.toContain('SENTINEL');
    const clean = await service.call('POST', '/pseudonymization', { apiKey: service.keys.pseudonymize, body: { identifiers: ['SENTINEL0VIN00001'] } });
    expect(clean.status).toBe(200);
  });
});
