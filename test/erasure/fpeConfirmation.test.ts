/**
 * Filing an erasure (or lifting a suppression) by FPE pseudonym needs a confirmation (issue 16, item 2).
 *
 * FF1 pseudonyms are not authenticated: any digit string of the right length decrypts to some plausible account
 * number, and an account_number pseudonym decrypts under national_id too. So a one-digit typo in a filing would
 * erase another person. A subject named by FPE pseudonym carries `confirm` (the identifier's last 4 characters,
 * or all of it); without it, or when it does not match, the filing is refused with 422 by index and nothing is
 * filed. AES-SIV pseudonyms need none. The real service over HTTP; values and confirmations never reach an answer
 * or a log line.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTestRegistry } from '../support/catalog.ts';
import { startTestService, type CallResult, type TestService } from '../support/service.ts';

const ACCOUNT = '4000123412344352';
const OTHER_ACCOUNT = '5100987698761234';
/** Upper-alphanumeric, so the national_id context takes it; its tail and a wrong tail are sentinels for the logs. */
const NATIONAL_ID = 'SENTINELXK7QZXJ';
const NATIONAL_TAIL = 'QZXJ';
const WRONG_TAIL = 'WVQK';
const EMAIL = 'sentinel.fpe@example.com';
const PROBLEM = 'urn:pseudonymization:problem:';

function registryFile(): string {
  return writeTestRegistry([
    {
      namespace: 'crm',
      name: 'accounts',
      columns: { account: 'string', national: 'string', email: 'string' },
      contexts: { account: 'account_number', national: 'national_id', email: 'email' },
    },
  ]);
}

/** The pseudonym with its character at `position` replaced by the next digit (a one-digit typo). */
function typoOf(pseudonym: string, position: number): string {
  const digit = (Number(pseudonym[position]) + 1) % 10;
  return `${pseudonym.slice(0, position)}${digit}${pseudonym.slice(position + 1)}`;
}

describe('erasure by FPE pseudonym needs a confirmation', () => {
  let service: TestService;
  let officer: string;
  const file = (subjects: unknown[], reference = 'DSR-FPE'): Promise<CallResult> =>
    service.call('POST', '/v1/erasure-requests', { apiKey: officer, body: { reference, reason: 'gdpr-art17-1a', subjects } });
  const lift = (subjects: unknown[]): Promise<CallResult> => service.call('POST', '/v1/erasure-lifts', { apiKey: officer, body: { reference: 'CONSENT-FPE', reason: 'consent', subjects } });
  const pseudonymOf = async (context: string, value: string): Promise<string> =>
    ((await service.call('POST', '/v1/pseudonymize', { apiKey: service.keys.pseudonymize, body: { context, values: [value] } })).json as { pseudonyms: string[] }).pseudonyms[0]!;
  const reidentify = async (context: string, pseudonym: string): Promise<{ values: (string | null)[]; errors: unknown[] }> =>
    (await service.call('POST', '/v1/reidentify', { apiKey: service.keys.reidentify, body: { context, pseudonyms: [pseudonym], keyVersion: 1 } })).json as { values: (string | null)[]; errors: unknown[] };
  const requestCount = async (): Promise<number> => ((await service.call('GET', '/v1/erasure-requests', { apiKey: officer })).json as { requests: unknown[] }).requests.length;
  const auditCount = async (): Promise<number> => (await service.running.service.erasure!.ledger.auditEntries()).length;
  /** A one-digit typo of the pseudonym whose identifier ends differently from the real one (almost any typo does). */
  const typoWithOtherTail = async (context: string, pseudonym: string, value: string): Promise<{ typo: string; typoValue: string }> => {
    for (let position = pseudonym.length - 1; position >= 0; position--) {
      const typo = typoOf(pseudonym, position);
      const typoValue = (await reidentify(context, typo)).values[0];
      if (typoValue && typoValue.slice(-4) !== value.slice(-4)) return { typo, typoValue };
    }
    throw new Error('no typo with another tail');
  };

  let accountPseudonym: string;
  let otherPseudonym: string;
  let nationalPseudonym: string;

  beforeAll(async () => {
    service = await startTestService({ PSEUDO_ERASURE_REGISTRY_FILE: registryFile() });
    officer = await service.createKey('officer', ['privacy-officer']);
    accountPseudonym = await pseudonymOf('account_number', ACCOUNT);
    otherPseudonym = await pseudonymOf('account_number', OTHER_ACCOUNT);
    nationalPseudonym = await pseudonymOf('national_id', NATIONAL_ID);
  });
  afterAll(async () => service.close());

  it('shows the weakness it guards against: a typo and another context both decrypt to plausible values', async () => {
    expect(accountPseudonym).toMatch(/^\d{16}$/);
    expect(await reidentify('account_number', '1234567')).toMatchObject({ values: [expect.stringMatching(/^\d{7}$/)], errors: [] });
    const { typoValue } = await typoWithOtherTail('account_number', accountPseudonym, ACCOUNT);
    expect(typoValue).toMatch(/^\d{16}$/);
    expect(typoValue).not.toBe(ACCOUNT);
    expect(await reidentify('national_id', accountPseudonym)).toMatchObject({ values: [expect.stringMatching(/^[0-9A-Z]{16}$/)], errors: [] });
  });

  it('refuses a one-digit typo with the right last 4 (422 confirmation-mismatch), by index, filing nothing', async () => {
    const { typo, typoValue } = await typoWithOtherTail('account_number', accountPseudonym, ACCOUNT);
    const [requests, audit] = [await requestCount(), await auditCount()];
    const answer = await file([{ context: 'email', value: EMAIL }, { context: 'account_number', pseudonym: typo, keyVersion: 1, confirm: ACCOUNT.slice(-4) }]);
    expect(answer.status).toBe(422);
    expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(answer.json).toMatchObject({ type: `${PROBLEM}confirmation-mismatch`, status: 422, errors: [{ index: 1, reason: 'confirmation-mismatch' }] });
    expect((answer.json as { detail: string }).detail).toContain('subjects[1].pseudonym');
    for (const secret of [ACCOUNT, ACCOUNT.slice(-4), typo, typoValue, EMAIL]) expect(answer.text).not.toContain(secret);
    // Nothing filed: no request, no audit entry, and neither the typo's person nor the other subject is suppressed.
    expect(await requestCount()).toBe(requests);
    expect(await auditCount()).toBe(audit);
    expect(await reidentify('account_number', typo)).toEqual({ values: [typoValue], errors: [] });
    expect(await pseudonymOf('email', EMAIL)).toMatch(/^s1\./);
  });

  it('refuses an FPE pseudonym with no confirmation (422 confirmation-required) naming the field, filing nothing', async () => {
    const requests = await requestCount();
    for (const subject of [{ context: 'account_number', pseudonym: accountPseudonym, keyVersion: 1 }, { context: 'account_number', pseudonym: accountPseudonym, confirm: '' }]) {
      const answer = await file([{ context: 'email', value: EMAIL }, subject]);
      expect(answer.status).toBe(422);
      expect(answer.json).toMatchObject({ type: `${PROBLEM}confirmation-required`, errors: [{ index: 1, reason: 'confirmation-required' }] });
      expect((answer.json as { detail: string }).detail).toContain('subjects[1].confirm');
      expect(answer.text).not.toContain(accountPseudonym);
    }
    expect(await requestCount()).toBe(requests);
  });

  it('refuses an account_number pseudonym named in the national_id context, where it decrypts to someone else', async () => {
    const answer = await file([{ context: 'national_id', pseudonym: accountPseudonym, keyVersion: 1, confirm: ACCOUNT.slice(-4) }]);
    expect(answer.status).toBe(422);
    expect(answer.json).toMatchObject({ type: `${PROBLEM}confirmation-mismatch`, errors: [{ index: 0, reason: 'confirmation-mismatch' }] });
  });

  it('files the right pseudonym with its last 4 (202), or with the whole identifier, and the subject is suppressed', async () => {
    const filed = await file([{ context: 'account_number', pseudonym: accountPseudonym, keyVersion: 1, confirm: ACCOUNT.slice(-4) }], 'DSR-FPE-1');
    expect(filed.status).toBe(202);
    expect(filed.json).toMatchObject({ status: 'received', subjects: { count: 1, contexts: ['account_number'] } });
    expect(await reidentify('account_number', accountPseudonym)).toEqual({ values: [null], errors: [{ index: 0, reason: 'erased' }] });

    const whole = await file([{ context: 'account_number', pseudonym: otherPseudonym, keyVersion: 1, confirm: OTHER_ACCOUNT }], 'DSR-FPE-2');
    expect(whole.status).toBe(202);
    expect(await reidentify('account_number', otherPseudonym)).toEqual({ values: [null], errors: [{ index: 0, reason: 'erased' }] });
    for (const secret of [ACCOUNT, OTHER_ACCOUNT, accountPseudonym, otherPseudonym]) expect(filed.text + whole.text).not.toContain(secret);
  });

  it('still files an AES-SIV pseudonym without a confirmation, checks one when given, and takes none for a hash token', async () => {
    const pseudonym = await pseudonymOf('email', 'sentinel.siv@example.com');
    const wrong = await file([{ context: 'email', pseudonym, confirm: 'nope' }], 'DSR-SIV');
    expect(wrong.status).toBe(422);
    expect(wrong.json).toMatchObject({ type: `${PROBLEM}confirmation-mismatch`, errors: [{ index: 0, reason: 'confirmation-mismatch' }] });
    expect((await file([{ context: 'email', pseudonym }], 'DSR-SIV')).status).toBe(202);

    const token = await pseudonymOf('device_id', 'sentinel-device-1');
    const hashed = await file([{ context: 'device_id', pseudonym: token, confirm: 'ce-1' }], 'DSR-HASH');
    expect(hashed.status).toBe(400);
    expect((hashed.json as { detail: string }).detail).toContain('subjects[0].confirm');
  });

  it('asks the same of a lift: no confirmation or a typo is 422 and lifts nothing; the right one lifts', async () => {
    const id = (await file([{ context: 'national_id', pseudonym: nationalPseudonym, keyVersion: 1, confirm: NATIONAL_TAIL }], 'DSR-NAT')).json as { id: string };
    const ledger = service.running.service.erasure!.ledger;
    await ledger.transition(id.id, { status: 'running', attempts: 1, runId: 'run-test' }, { actor: 'service', action: 'erasure.started', requestId: id.id, outcome: 'running' });
    await ledger.transition(id.id, { status: 'verified' }, { actor: 'service', action: 'erasure.verified', requestId: id.id, outcome: 'verified' });

    const missing = await lift([{ context: 'national_id', pseudonym: nationalPseudonym, keyVersion: 1 }]);
    expect(missing.status).toBe(422);
    expect(missing.json).toMatchObject({ type: `${PROBLEM}confirmation-required`, errors: [{ index: 0, reason: 'confirmation-required' }] });
    expect((missing.json as { detail: string }).detail).toContain('subjects[0].confirm');

    const wrongTail = await lift([{ context: 'national_id', pseudonym: nationalPseudonym, keyVersion: 1, confirm: WRONG_TAIL }]);
    expect(wrongTail.status).toBe(422);
    expect(wrongTail.json).toMatchObject({ type: `${PROBLEM}confirmation-mismatch`, errors: [{ index: 0, reason: 'confirmation-mismatch' }] });
    const { typo } = await typoWithOtherTail('account_number', accountPseudonym, ACCOUNT);
    const typoLift = await lift([{ context: 'account_number', pseudonym: typo, keyVersion: 1, confirm: ACCOUNT.slice(-4) }]);
    expect(typoLift.status).toBe(422);
    expect(typoLift.json).toMatchObject({ type: `${PROBLEM}confirmation-mismatch` });
    expect((await service.call('GET', '/v1/erasure-lifts', { apiKey: officer })).json).toEqual({ lifts: [] });
    expect(await reidentify('national_id', nationalPseudonym)).toEqual({ values: [null], errors: [{ index: 0, reason: 'erased' }] });

    const lifted = await lift([{ context: 'national_id', pseudonym: nationalPseudonym, keyVersion: 1, confirm: NATIONAL_TAIL }]);
    expect(lifted.status).toBe(201);
    expect(await reidentify('national_id', nationalPseudonym)).toEqual({ values: [NATIONAL_ID], errors: [] });
    for (const answer of [missing, wrongTail, typoLift, lifted]) {
      for (const secret of [NATIONAL_ID, NATIONAL_TAIL, WRONG_TAIL, nationalPseudonym, 'SENTINEL']) expect(answer.text).not.toContain(secret);
    }
  });

  it('keeps identifiers, pseudonyms and confirmations out of the logs', () => {
    const logs = service.logs();
    expect(logs).toMatch(/"route":"\/v1\/erasure-requests","method":"POST","status":422/); // the refusals were logged, by status
    for (const secret of [ACCOUNT, OTHER_ACCOUNT, accountPseudonym, otherPseudonym, NATIONAL_ID, NATIONAL_TAIL, WRONG_TAIL, nationalPseudonym, 'SENTINEL', 'sentinel', '"confirm"']) {
      expect(logs).not.toContain(secret);
    }
  });
});
