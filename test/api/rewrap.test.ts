/**
 * POST /v1/rewrap over HTTP: a pseudonym of an older key version becomes the same subject's pseudonym under the
 * active version (what pseudonymize gives now), without the value leaving the service; items that cannot be
 * decrypted fail one by one as in reidentify; an erased subject gets no pseudonym; the route has its own role.
 * Pseudonymize with `allVersions` answers the pseudonyms under every readable version, for lookups before re-keying.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyringManagerFor } from '../../api/keyring/fromConfig.ts';
import { writeTestRegistry } from '../support/catalog.ts';
import { startTestService, type TestService } from '../support/service.ts';

const VINS = ['1HGCM82633A004352', 'WVWZZZ1JZXW000001', 'JH4KA7561PC008269'];
const ERASED_VIN = 'SENTINELVIN0ERASED';
const ACCOUNT = '4000123412341234';

interface PseudonymizeAnswer {
  pseudonyms: (string | null)[];
  keyVersion: number;
  erased?: number[];
}
interface RewrapAnswer {
  pseudonyms: (string | null)[];
  keyVersion: number;
  errors: { index: number; reason: string }[];
  erased?: number[];
}

describe('POST /v1/rewrap', () => {
  let service: TestService;
  let rewrapKey: string;
  let officer: string;
  let emailOnly: string;
  /** Version 1 pseudonyms, taken before the rotation. */
  let v1: { vins: string[]; randomized: string; account: string; hash: string; erased: string };

  const pseudonymize = async (context: string, values: string[], deterministic = true) =>
    (await service.call('POST', '/v1/pseudonymize', { apiKey: service.keys.pseudonymize, body: { context, values, deterministic } })).json as PseudonymizeAnswer;
  const rewrap = (body: unknown, apiKey = rewrapKey) => service.call('POST', '/v1/rewrap', { apiKey, body });
  const rotate = async () => {
    await keyringManagerFor(service.config.keyring).rotate();
    await service.running.service.refreshKeyring();
  };

  beforeAll(async () => {
    const registry = writeTestRegistry([{ namespace: 'fleet', name: 'vehicles', columns: { vin: 'string' }, contexts: { vin: 'vin' } }]);
    service = await startTestService({ PSEUDO_ERASURE_REGISTRY_FILE: registry });
    rewrapKey = await service.createKey('rekey-job', ['rewrap']);
    officer = await service.createKey('officer', ['privacy-officer']);
    emailOnly = await service.createKey('rekey-email', ['rewrap'], ['email']);
    const vins = (await pseudonymize('vin', [...VINS, ERASED_VIN])).pseudonyms as string[];
    v1 = {
      vins: vins.slice(0, VINS.length),
      erased: vins[VINS.length]!,
      randomized: (await pseudonymize('vin', [VINS[0]!], false)).pseudonyms[0]!,
      account: (await pseudonymize('account_number', [ACCOUNT])).pseudonyms[0]!,
      hash: (await pseudonymize('device_id', ['device-1'])).pseudonyms[0]!,
    };
    await rotate();
  });
  afterAll(async () => service.close());

  it('gives the pseudonyms pseudonymize gives under the new version, in order, nulls kept', async () => {
    const now = await pseudonymize('vin', VINS);
    expect(now.keyVersion).toBe(2);
    const answer = await rewrap({ context: 'vin', pseudonyms: [v1.vins[0], null, v1.vins[1], v1.vins[2], now.pseudonyms[0]] });
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ pseudonyms: [now.pseudonyms[0], null, now.pseudonyms[1], now.pseudonyms[2], now.pseudonyms[0]], keyVersion: 2, errors: [] });
    expect(v1.vins.every((p) => p.startsWith('s1.'))).toBe(true);
    // Audited as reidentify is: who rewrapped, in which context, never a value or pseudonym.
    const audit = service
      .logs()
      .split('\n')
      .filter((text) => text.includes('"audit":true') && text.includes('"action":"rewrap"'));
    expect(audit.length).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(audit[0]!)).toMatchObject({ action: 'rewrap', outcome: 'success', context: 'vin' });
    for (const line of audit) expect(v1.vins.some((p) => line.includes(p)) || VINS.some((v) => line.includes(v))).toBe(false);
  });

  it('keeps each pseudonym in its mode: randomized gets a fresh version 2 token of the same value, FF1 takes the inputs\' version', async () => {
    const randomized = (await rewrap({ context: 'vin', pseudonyms: [v1.randomized] })).json as RewrapAnswer;
    expect(randomized.pseudonyms[0]).toMatch(/^r2\./);
    const back = await service.call('POST', '/v1/reidentify', { apiKey: service.keys.reidentify, body: { context: 'vin', pseudonyms: randomized.pseudonyms } });
    expect(back.json).toEqual({ values: [VINS[0]], errors: [] });

    const account = (await rewrap({ context: 'account_number', pseudonyms: [v1.account], keyVersion: 1 })).json as RewrapAnswer;
    expect(account).toEqual({ pseudonyms: (await pseudonymize('account_number', [ACCOUNT])).pseudonyms, keyVersion: 2, errors: [] });
  });

  it('answers per item for tampered, other-context, malformed, unknown-version and irreversible pseudonyms, never with a value', async () => {
    const tampered = v1.vins[0]!.slice(0, -2) + (v1.vins[0]!.endsWith('AA') ? 'BA' : 'AA');
    const answer = await rewrap({ context: 'email', pseudonyms: [v1.vins[0]] });
    expect(answer.json).toEqual({ pseudonyms: [null], keyVersion: 2, errors: [{ index: 0, reason: 'authentication-failed' }] });
    const mixed = await rewrap({ context: 'vin', pseudonyms: [tampered, v1.vins[1], 's9.' + v1.vins[2]!.slice(3), 'not a pseudonym', v1.hash] });
    expect(mixed.status).toBe(200);
    const body = mixed.json as RewrapAnswer;
    expect(body.pseudonyms[0]).toBeNull();
    expect(body.pseudonyms[1]).toMatch(/^s2\./);
    expect(body.errors).toEqual([
      { index: 0, reason: 'authentication-failed' },
      { index: 2, reason: 'unknown-key-version' },
      { index: 3, reason: 'malformed' },
      { index: 4, reason: 'irreversible' },
    ]);
    expect(mixed.text).not.toContain(VINS[0]);
  });

  it('gives no pseudonym for a subject whose erasure was filed: null, and its index in `erased`', async () => {
    const filed = await service.call('POST', '/v1/erasure-requests', { apiKey: officer, body: { reference: 'REKEY-1', reason: 'gdpr-art17-1a', subjects: [{ context: 'vin', value: ERASED_VIN }] } });
    expect(filed.status).toBe(202);
    const answer = await rewrap({ context: 'vin', pseudonyms: [v1.vins[0], v1.erased] });
    const body = answer.json as RewrapAnswer;
    expect(body.pseudonyms[0]).toMatch(/^s2\./);
    expect(body).toMatchObject({ pseudonyms: [body.pseudonyms[0], null], keyVersion: 2, errors: [], erased: [1] });
  });

  it('needs the rewrap role, and an API key scoped to other contexts is refused', async () => {
    const asPseudonymizer = await rewrap({ context: 'vin', pseudonyms: [v1.vins[0]] }, service.keys.pseudonymize);
    expect(asPseudonymizer.status).toBe(403);
    const asSteward = await rewrap({ context: 'vin', pseudonyms: [v1.vins[0]] }, service.keys.reidentify);
    expect(asSteward.status).toBe(403);
    expect((await rewrap({ context: 'vin', pseudonyms: [v1.vins[0]] }, emailOnly)).status).toBe(403);
  });

  it('checks the body as reidentify does: the same value limit, unknown fields refused without quoting them', async () => {
    const tooMany = await rewrap({ context: 'vin', pseudonyms: new Array<null>(service.config.limits.maxValues + 1).fill(null) });
    expect(tooMany.status).toBe(400);
    const extra = await rewrap({ context: 'vin', pseudonyms: [], sentinelFieldName: 1 });
    expect(extra.status).toBe(400);
    expect(extra.text).not.toContain('sentinelFieldName');
  });

  it('pseudonymize with allVersions answers every readable version\'s pseudonym, newest first; null and erased values get null', async () => {
    const answer = await service.call('POST', '/v1/pseudonymize', { apiKey: service.keys.pseudonymize, body: { context: 'vin', values: [VINS[0], null, ERASED_VIN, VINS[1]], allVersions: true } });
    expect(answer.status).toBe(200);
    const body = answer.json as PseudonymizeAnswer & { allVersions: (string[] | null)[] };
    const now = (await pseudonymize('vin', [VINS[0]!, VINS[1]!])).pseudonyms;
    expect(body).toEqual({
      pseudonyms: [now[0], null, null, now[1]],
      keyVersion: 2,
      erased: [2],
      allVersions: [[now[0], v1.vins[0]], null, null, [now[1], v1.vins[1]]],
    });
    const without = (await pseudonymize('vin', [VINS[0]!])) as PseudonymizeAnswer & { allVersions?: unknown };
    expect(without.allVersions).toBeUndefined();
    const randomized = await service.call('POST', '/v1/pseudonymize', { apiKey: service.keys.pseudonymize, body: { context: 'vin', values: [VINS[0]], allVersions: true, deterministic: false } });
    expect(randomized.status).toBe(400);
  });

  it('answers key-destroyed once the version is destroyed (last: it changes the keyring)', async () => {
    await rotate();
    await keyringManagerFor(service.config.keyring).destroy(1);
    await service.running.service.refreshKeyring();
    const answer = await rewrap({ context: 'vin', pseudonyms: [v1.vins[0], v1.account] });
    expect(answer.json).toEqual({ pseudonyms: [null, null], keyVersion: 3, errors: [{ index: 0, reason: 'key-destroyed' }, { index: 1, reason: 'malformed' }] });
    const account = await rewrap({ context: 'account_number', pseudonyms: [v1.account], keyVersion: 1 });
    expect(account.json).toEqual({ pseudonyms: [null], keyVersion: 3, errors: [{ index: 0, reason: 'key-destroyed' }] });
  });
});
