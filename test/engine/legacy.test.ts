/**
 * The engine with an imported AWS sample key, per transform: next to this service's own tokens in one batch, in a
 * keyed-hash context (rewrap gives the `h` pseudonym pseudonymize gives) and in FF1 contexts (the sample's pseudonym
 * is tried first, since it authenticates; a value FF1 cannot take has no pseudonym there and fails `malformed`).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AwsSampleKey, parseAwsSampleSecret } from '../../api/engine/legacyAwsSample.ts';
import { Keyring } from '../../api/keyring/keyring.ts';
import { SqliteErasureLedger } from '../../api/erasure/sqliteLedger.ts';
import { ErasureSuppression } from '../../api/erasure/suppression.ts';
import { engineOf } from '../support/engine.ts';

interface Fixture {
  secret: Record<string, unknown>;
  deterministic: { identifier: string; pseudonym: string }[];
  nonDeterministic: { identifier: string; pseudonym: string }[];
}
const fixture = JSON.parse(readFileSync('test/fixtures/aws-sample-vectors.json', 'utf8')) as Fixture;
const CONTEXTS = ['vin', 'device_id', 'account_number', 'national_id'];

function setUp() {
  const secret = parseAwsSampleSecret(JSON.stringify(fixture.secret));
  const sample = new AwsSampleKey(99, CONTEXTS, secret.material, secret.nonceStrPos, secret.nonceEndPos);
  const keyring = new Keyring();
  keyring.apply([
    { version: 1, state: 'active', createdAt: '2026-01-01T00:00:00.000Z', material: new Uint8Array(randomBytes(64)) },
    {
      version: 2,
      state: 'decrypt-only',
      createdAt: '2026-01-01T00:00:00.000Z',
      material: Uint8Array.from(secret.material),
      legacy: { kind: 'legacy-aws-sample', contexts: CONTEXTS, nonceStrPos: secret.nonceStrPos, nonceEndPos: secret.nonceEndPos },
    },
  ]);
  return { keyring, engine: engineOf(keyring), sample };
}

describe('engine with an AWS sample key', () => {
  it("reads the sample's pseudonyms in one batch with this service's own, and never pseudonymizes with the sample key", () => {
    const { engine } = setUp();
    const [first, second] = fixture.deterministic;
    const ours = engine.pseudonymize('vin', ['VIN-OURS-000000001'], { deterministic: true }).pseudonyms[0]!;
    const randomized = engine.pseudonymize('vin', ['VIN-OURS-000000002'], { deterministic: false }).pseudonyms[0]!;
    const answer = engine.reidentify('vin', [ours, first!.pseudonym, randomized, fixture.nonDeterministic[1]!.pseudonym, null]);
    expect(answer).toEqual({ values: ['VIN-OURS-000000001', first!.identifier, 'VIN-OURS-000000002', fixture.nonDeterministic[1]!.identifier, null], errors: [] });
    const rewrapped = engine.rewrap('vin', [second!.pseudonym, ours]);
    expect(rewrapped.pseudonyms).toEqual([engine.pseudonymize('vin', [second!.identifier], { deterministic: true }).pseudonyms[0], ours]);
    expect(engine.pseudonymsInEveryVersion('vin', [second!.identifier])[0]).toHaveLength(1);
  });

  it('rewraps into the keyed hash in a hash context', () => {
    const { engine } = setUp();
    const vectors = [...fixture.deterministic, ...fixture.nonDeterministic];
    expect(engine.reidentify('device_id', vectors.map((v) => v.pseudonym)).values).toEqual(vectors.map((v) => v.identifier));
    const rewrapped = engine.rewrap('device_id', vectors.map((v) => v.pseudonym));
    expect(rewrapped.errors).toEqual([]);
    expect(rewrapped.pseudonyms).toEqual(engine.pseudonymize('device_id', vectors.map((v) => v.identifier), { deterministic: true }).pseudonyms);
    expect(rewrapped.pseudonyms.every((p) => p!.startsWith('h1.'))).toBe(true);
  });

  it("tries the sample's pseudonym before FF1 in an fpe context; a value outside the alphabet cannot be rewrapped there", () => {
    const { engine, sample } = setUp();
    const legacy = sample.deterministicPseudonym('12345678');
    const ff1 = engine.pseudonymize('account_number', ['87654321'], { deterministic: true }).pseudonyms[0]!;
    const outside = fixture.deterministic.find((v) => v.identifier === 'jane.doe@example.com')!;
    expect(engine.reidentify('account_number', [legacy, ff1, outside.pseudonym]).values).toEqual(['12345678', '87654321', outside.identifier]);
    const rewrapped = engine.rewrap('account_number', [legacy, ff1, outside.pseudonym]);
    expect(rewrapped.pseudonyms).toEqual([engine.pseudonymize('account_number', ['12345678'], { deterministic: true }).pseudonyms[0], ff1, null]);
    expect(rewrapped.errors).toEqual([{ index: 2, reason: 'malformed' }]);
    // A pseudonym in the sample's format that does not authenticate and is no FF1 text: authentication-failed.
    const altered = Buffer.from(outside.pseudonym, 'base64');
    altered[20]! ^= 1;
    expect(engine.reidentify('national_id', [altered.toString('base64')]).errors).toEqual([{ index: 0, reason: 'authentication-failed' }]);
  });

  it("puts the subject's sample pseudonym first among the pseudonyms an erasure looks for, and withholds the sample's tokens once filed", async () => {
    const { keyring, engine } = setUp();
    const ledger = new SqliteErasureLedger(join(mkdtempSync(join(tmpdir(), 'legacy-erasure-')), 'erasure.db'));
    const suppression = new ErasureSuppression(ledger, engine, keyring, { cacheSeconds: 5 });
    const vector = fixture.deterministic.find((v) => v.identifier === 'Zoë Ångström-Łukasz')!;
    const [pseudonyms] = suppression.pseudonymsInEveryVersion('vin', [vector.identifier]);
    expect(pseudonyms).toEqual([vector.pseudonym, engine.pseudonymize('vin', [vector.identifier], { deterministic: true }).pseudonyms[0]]);
    expect(suppression.pseudonymsInEveryVersion('email', [vector.identifier])[0]).toHaveLength(1);
    await ledger.create(
      { id: 'er-1', reference: 'er-1', reason: 'gdpr-art17-1a', filedBy: 'person:olivia', subjects: [{ context: 'vin', pseudonyms: pseudonyms! }], tables: [] },
      { actor: 'person:olivia', action: 'erasure.filed', requestId: 'er-1', outcome: 'received' },
    );
    const randomized = fixture.nonDeterministic.find((v) => v.identifier === vector.identifier)!;
    expect((await suppression.reidentify('vin', [vector.pseudonym, randomized.pseudonym])).errors).toEqual([
      { index: 0, reason: 'erased' },
      { index: 1, reason: 'erased' },
    ]);
    expect((await suppression.rewrap('vin', [vector.pseudonym])).erased).toEqual([0]);
    await ledger.close();
  });
});
