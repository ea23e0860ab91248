/**
 * Lifting suppression over HTTP (POST/GET /v1/erasure-lifts): after a lift, pseudonymize hands out the subject's
 * pseudonym again and reidentify answers for them; a later filing suppresses them again; refusals (not suppressed,
 * erasure still running, missing reference, wrong role) are problem+json naming fields and indexes, never values.
 * Erasure requests are finished through the service's own ledger, as the worker would (no runner here).
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { liftOutcome, verifyAuditChain, type NewSuppressionLift } from '../../api/erasure/ledger.ts';
import { SqliteErasureLedger } from '../../api/erasure/sqliteLedger.ts';
import { ErasureSuppression } from '../../api/erasure/suppression.ts';
import { writeTestRegistry } from '../support/catalog.ts';
import { engineOf, keyringOf } from '../support/engine.ts';
import { assertMatchesOpenApi } from '../support/openapi.ts';
import { startTestService, type CallResult, type TestService } from '../support/service.ts';

const JANE = 'sentinel.jane@example.com';
const JOHN = 'sentinel.john@example.com';
const KEPT = 'sentinel.kept@example.com';

function registryFile(): string {
  return writeTestRegistry([{ namespace: 'crm', name: 'customers', columns: { email: 'string' }, contexts: { email: 'email' } }]);
}

interface Pseudonymized {
  pseudonyms: (string | null)[];
  erased?: number[];
}

describe('lifting suppression over HTTP', () => {
  let service: TestService;
  let officer: string;
  const pseudonymize = async (values: string[]): Promise<Pseudonymized> =>
    (await service.call('POST', '/v1/pseudonymize', { apiKey: service.keys.pseudonymize, body: { context: 'email', values } })).json as Pseudonymized;
  const reidentify = async (pseudonyms: string[]): Promise<unknown> => (await service.call('POST', '/v1/reidentify', { apiKey: service.keys.reidentify, body: { context: 'email', pseudonyms } })).json;
  const lift = (body: unknown, apiKey = officer): Promise<CallResult> => service.call('POST', '/v1/erasure-lifts', { apiKey, body });
  /** Files an erasure and finishes it as the worker would (received → running → verified). */
  const erase = async (reference: string, subjects: unknown[]): Promise<string> => {
    const filed = await service.call('POST', '/v1/erasure-requests', { apiKey: officer, body: { reference, reason: 'gdpr-art17-1a', subjects } });
    expect(filed.status).toBe(202);
    const id = (filed.json as { id: string }).id;
    const ledger = service.running.service.erasure!.ledger;
    await ledger.transition(id, { status: 'running', attempts: 1, runId: 'run-test' }, { actor: 'service', action: 'erasure.started', requestId: id, outcome: 'running' });
    await ledger.transition(id, { status: 'verified' }, { actor: 'service', action: 'erasure.verified', requestId: id, outcome: 'verified' });
    return id;
  };

  beforeAll(async () => {
    service = await startTestService({ PSEUDO_ERASURE_REGISTRY_FILE: registryFile() });
    officer = await service.createKey('officer', ['privacy-officer']);
  });
  afterAll(async () => service.close());

  it('gives the pseudonym back after a lift, reidentify answers again, and a later filing suppresses again', async () => {
    const before = (await pseudonymize([JANE, KEPT])).pseudonyms as string[];
    await erase('DSR-100', [{ context: 'email', value: JANE }]);
    expect(await pseudonymize([JANE, KEPT])).toEqual({ pseudonyms: [null, before[1]], keyVersion: 1, erased: [0] });
    expect(await reidentify([before[0]!])).toEqual({ values: [null], errors: [{ index: 0, reason: 'erased' }] });

    const lifted = await lift({ reference: 'CONSENT-100', reason: 'consent', subjects: [{ context: 'email', value: JANE }] });
    expect(lifted.status).toBe(201);
    assertMatchesOpenApi('POST', '/v1/erasure-lifts', 201, lifted.headers.get('content-type') ?? '', lifted.json);
    expect(lifted.json).toMatchObject({ reference: 'CONSENT-100', reason: 'consent', subjects: { count: 1, contexts: ['email'] } });
    expect((lifted.json as { id: string }).id).toMatch(/^lf-[0-9a-f-]{36}$/);
    expect(lifted.text).not.toContain(before[0]!.slice(3));

    expect(await pseudonymize([JANE, KEPT])).toEqual({ pseudonyms: before, keyVersion: 1 });
    expect(await reidentify([before[0]!])).toEqual({ values: [JANE], errors: [] });

    // Filed again later: the latest event wins.
    await erase('DSR-101', [{ context: 'email', pseudonym: before[0] }]);
    expect((await pseudonymize([JANE])).erased).toEqual([0]);
    expect(await reidentify([before[0]!])).toEqual({ values: [null], errors: [{ index: 0, reason: 'erased' }] });

    const listed = await service.call('GET', '/v1/erasure-lifts', { apiKey: officer });
    expect(listed.status).toBe(200);
    assertMatchesOpenApi('GET', '/v1/erasure-lifts', 200, listed.headers.get('content-type') ?? '', listed.json);
    expect((listed.json as { lifts: unknown[] }).lifts).toContainEqual(lifted.json);
  });

  it('refuses a subject that is not suppressed with 409 not-suppressed, by index, lifting nothing', async () => {
    await erase('DSR-200', [{ context: 'email', value: JOHN }]);
    const answer = await lift({ reference: 'CONSENT-200', reason: 'consent', subjects: [{ context: 'email', value: JOHN }, { context: 'email', value: KEPT }] });
    expect(answer.status).toBe(409);
    expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(answer.json).toMatchObject({ type: 'urn:pseudonymization:problem:not-suppressed', errors: [{ index: 1, reason: 'not-suppressed' }] });
    expect(answer.text).not.toContain('sentinel');
    expect((await pseudonymize([JOHN])).erased).toEqual([0]); // John stays suppressed: all or nothing
  });

  it('refuses a subject whose erasure has not finished with 409 erasure-pending', async () => {
    const filed = await service.call('POST', '/v1/erasure-requests', { apiKey: officer, body: { reference: 'DSR-300', reason: 'gdpr-art17-1a', subjects: [{ context: 'email', value: 'sentinel.pending@example.com' }] } });
    expect((filed.json as { status: string }).status).toBe('received');
    const answer = await lift({ reference: 'CONSENT-300', reason: 'filed-in-error', subjects: [{ context: 'email', value: 'sentinel.pending@example.com' }] });
    expect(answer.status).toBe(409);
    expect(answer.json).toMatchObject({ type: 'urn:pseudonymization:problem:erasure-pending', errors: [{ index: 0, reason: 'erasure-pending' }] });
  });

  it.each([
    [{ reason: 'consent', subjects: [{ context: 'email', value: JANE }] }, 'reference: a ticket reference'],
    [{ reference: 'Jane asked again', reason: 'consent', subjects: [{ context: 'email', value: JANE }] }, 'reference: a ticket reference'],
    [{ reference: 'T-1', subjects: [{ context: 'email', value: JANE }] }, 'reason: one of consent, contract, legal-obligation, filed-in-error'],
    [{ reference: 'T-1', reason: 'gdpr-art17-1a', subjects: [{ context: 'email', value: JANE }] }, 'reason: one of consent'],
    [{ reference: 'T-1', reason: 'consent', subjects: [] }, 'subjects: at least one'],
    [{ reference: 'T-1', reason: 'consent', subjects: [{ context: 'email', value: '' }] }, 'subjects[0].value: must not be empty'],
  ])('refuses a bad lift with 400 problem+json naming the field (%#)', async (body, detail) => {
    const answer = await lift(body);
    expect(answer.status).toBe(400);
    expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect((answer.json as { type: string }).type).toBe('urn:pseudonymization:problem:validation-failed');
    expect((answer.json as { detail: string }).detail).toContain(detail);
    expect(answer.text).not.toContain('sentinel');
    expect(answer.text).not.toContain('Jane');
  });

  it('needs the privacy-officer role: 401 without a key, 403 with another role', async () => {
    const body = { reference: 'T-2', reason: 'consent', subjects: [{ context: 'email', value: JANE }] };
    expect((await service.call('POST', '/v1/erasure-lifts', { body })).status).toBe(401);
    for (const apiKey of [service.keys.pseudonymize, service.keys.reidentify]) {
      const answer = await lift(body, apiKey);
      expect(answer.status).toBe(403);
      expect((answer.json as { type: string }).type).toBe('urn:pseudonymization:problem:forbidden');
    }
    expect((await service.call('GET', '/v1/erasure-lifts', { apiKey: service.keys.reidentify })).status).toBe(403);
  });

  it('chains the lift in the audit log with count, reason and reference, and keeps no identifier in the ledger or logs', async () => {
    const entries = await service.running.service.erasure!.ledger.auditEntries();
    expect(verifyAuditChain(entries).valid).toBe(true);
    const lifts = entries.filter((e) => e.action === 'erasure.lifted');
    expect(lifts).toHaveLength(1);
    expect(lifts[0]).toMatchObject({ outcome: 'lifted 1 reason=consent reference=CONSENT-100' });
    expect(lifts[0]!.actor).toMatch(/^api-key:/);
    expect(lifts[0]!.requestId).toMatch(/^lf-/);
    const ledger = readFileSync(service.config.erasure.ledgerFile);
    expect(ledger.includes(Buffer.from('sentinel'))).toBe(false);
    expect(service.logs()).not.toContain('sentinel');
  });
});

describe('a lift in the suppression cache of each process', () => {
  /** Two processes on one ledger file, each with its own cached set and a clock the test moves. */
  function twoProcesses(cacheSeconds: number) {
    const keyring = keyringOf([{ version: 1, state: 'active', root: randomBytes(64) }]);
    const engine = engineOf(keyring);
    const file = join(mkdtempSync(join(tmpdir(), 'lift-')), 'erasure.db');
    let now = 1_000_000;
    const clock = { advance: (ms: number) => void (now += ms) };
    const open = () => {
      const ledger = new SqliteErasureLedger(file);
      return { ledger, suppression: new ErasureSuppression(ledger, engine, keyring, { cacheSeconds, now: () => now }) };
    };
    return { engine, clock, here: open(), elsewhere: open() };
  }

  it('answers again at once in the lifting process, and in another within the cache bound', async () => {
    const { engine, clock, here, elsewhere } = twoProcesses(10);
    const jane = engine.pseudonymize('email', [JANE], { deterministic: true }).pseudonyms[0]!;
    await here.ledger.create({ id: 'er-1', reference: 'DSR-1', reason: 'gdpr-art17-1a', filedBy: 'person:olivia', subjects: [{ context: 'email', pseudonyms: [jane] }], tables: [] }, { actor: 'person:olivia', action: 'erasure.filed', requestId: 'er-1', outcome: 'received' });
    here.suppression.noteFiled([{ context: 'email', pseudonyms: [jane] }]);
    await here.ledger.transition('er-1', { status: 'running' }, { actor: 'service', action: 'erasure.started', requestId: 'er-1', outcome: 'running' });
    await here.ledger.transition('er-1', { status: 'verified' }, { actor: 'service', action: 'erasure.verified', requestId: 'er-1', outcome: 'verified' });
    for (const process of [here, elsewhere]) expect((await process.suppression.pseudonymize('email', [JANE], { deterministic: true })).erased).toEqual([0]);

    // The other process lifts: it answers at once; this one, which filed Jane itself, within the bound.
    const lifted: NewSuppressionLift = { id: 'lf-1', reference: 'CONSENT-1', reason: 'consent', liftedBy: 'person:olivia', subjects: [{ context: 'email', pseudonyms: [jane] }] };
    await elsewhere.ledger.lift(lifted, { actor: 'person:olivia', action: 'erasure.lifted', requestId: 'lf-1', outcome: liftOutcome(lifted) });
    elsewhere.suppression.noteLifted(lifted.subjects);
    expect(await elsewhere.suppression.pseudonymize('email', [JANE], { deterministic: true })).toEqual({ pseudonyms: [jane], keyVersion: 1, erased: [] });
    expect((await here.suppression.reidentify('email', [jane])).errors).toEqual([{ index: 0, reason: 'erased' }]); // its set is fresh
    clock.advance(10_000);
    expect(await here.suppression.reidentify('email', [jane])).toEqual({ values: [JANE], errors: [] });
    expect((await here.suppression.pseudonymize('email', [JANE], { deterministic: true })).erased).toEqual([]);
    await here.ledger.close();
    await elsewhere.ledger.close();
  });
});

describe('lifting without erasure configured', () => {
  it('answers 404 not-found', async () => {
    const service = await startTestService();
    try {
      const officer = await service.createKey('officer', ['privacy-officer']);
      const answer = await service.call('POST', '/v1/erasure-lifts', { apiKey: officer, body: { reference: 'T-1', reason: 'consent', subjects: [{ context: 'email', value: JANE }] } });
      expect(answer.status).toBe(404);
      expect((answer.json as { type: string }).type).toBe('urn:pseudonymization:problem:not-found');
    } finally {
      await service.close();
    }
  });
});
