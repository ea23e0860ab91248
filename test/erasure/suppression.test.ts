/** Erasure suppression between the routes and the engine: withholding on reidentify, the cached erased set and its bound. */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { NewErasureRequest } from '../../api/erasure/ledger.ts';
import { SqliteErasureLedger } from '../../api/erasure/sqliteLedger.ts';
import { ErasureSuppression } from '../../api/erasure/suppression.ts';
import { PlatformError } from '../../api/errors.ts';
import { engineOf, keyringOf } from '../support/engine.ts';

const JANE = 'sentinel.jane@example.com';
const JOHN = 'sentinel.john@example.com';

function setUp(cacheSeconds = 5) {
  const root1 = randomBytes(64);
  const keyring = keyringOf([
    { version: 1, state: 'decrypt-only', root: root1 },
    { version: 2, state: 'active', root: randomBytes(64) },
    { version: 3, state: 'destroyed' },
  ]);
  const engine = engineOf(keyring);
  const file = join(mkdtempSync(join(tmpdir(), 'suppression-')), 'erasure.db');
  const ledger = new SqliteErasureLedger(file);
  let now = 1_000_000;
  const clock = { advance: (ms: number) => void (now += ms) };
  const suppression = new ErasureSuppression(ledger, engine, keyring, { cacheSeconds, now: () => now });
  const oldEngine = engineOf(keyringOf([{ version: 1, state: 'active', root: root1 }]));
  return { keyring, engine, oldEngine, ledger, file, suppression, clock };
}

function filing(id: string, context: string, pseudonyms: string[]): NewErasureRequest {
  return { id, reference: id, reason: 'gdpr-art17-1a', filedBy: 'person:olivia', subjects: [{ context, pseudonyms }], tables: [] };
}
const audit = (requestId: string) => ({ actor: 'person:olivia', action: 'erasure.filed', requestId, outcome: 'received' });

describe('erasure suppression', () => {
  it("gives a subject's pseudonyms under every readable key version, oldest first", () => {
    const { engine, oldEngine, suppression } = setUp();
    const [jane] = suppression.pseudonymsInEveryVersion('email', [JANE]);
    expect(jane).toEqual([oldEngine.pseudonymize('email', [JANE], { deterministic: true }).pseudonyms[0], engine.pseudonymize('email', [JANE], { deterministic: true }).pseudonyms[0]]);
  });

  it('withholds an erased subject from reidentify under any token of theirs (any version, randomized), and no one else', async () => {
    const { engine, ledger, suppression } = setUp();
    const [jane] = suppression.pseudonymsInEveryVersion('email', [JANE]);
    await ledger.create(filing('er-1', 'email', [jane![0]!]), audit('er-1')); // filed under version 1 only
    const john = engine.pseudonymize('email', [JOHN], { deterministic: true }).pseudonyms[0]!;
    const randomized = engine.pseudonymize('email', [JANE], { deterministic: false }).pseudonyms[0]!;
    const answer = await suppression.reidentify('email', [jane![1]!, john, randomized, jane![0]!, null]);
    expect(answer.values).toEqual([null, JOHN, null, null, null]);
    expect(answer.errors).toEqual([
      { index: 0, reason: 'erased' },
      { index: 2, reason: 'erased' },
      { index: 3, reason: 'erased' },
    ]);
    // Another context is not touched; the erasure core still resolves the subject.
    const vin = engine.pseudonymize('vin', [JANE], { deterministic: true }).pseudonyms[0]!;
    expect((await suppression.reidentify('vin', [vin])).values).toEqual([JANE]);
    expect(suppression.resolveForErasure('email', [jane![1]!]).values).toEqual([JANE]);
    await ledger.close();
  });

  it('withholds from a batch of one version\'s deterministic tokens, filed under that version or only an older one', async () => {
    const { engine, ledger, suppression } = setUp();
    const [jane, john] = suppression.pseudonymsInEveryVersion('email', [JANE, JOHN]);
    await ledger.create(filing('er-1', 'email', [jane![0]!]), audit('er-1')); // filed under version 1 only
    // Every token of version 1 (looked up as it is), then every token of version 2 (computed under version 1).
    for (const version of [0, 1]) {
      const answer = await suppression.reidentify('email', [john![version]!, jane![version]!]);
      expect(answer.values).toEqual([JOHN, null]);
      expect(answer.errors).toEqual([{ index: 1, reason: 'erased' }]);
    }
    expect(engine.reidentify('email', [jane![1]!]).values).toEqual([JANE]);
    await ledger.close();
  });

  it('withholds from pseudonymize a subject filed under an older key version only, and counts nothing else', async () => {
    const { oldEngine, ledger, suppression } = setUp();
    const underVersion1 = oldEngine.pseudonymize('email', [JANE], { deterministic: true }).pseudonyms[0]!;
    await ledger.create(filing('er-1', 'email', [underVersion1]), audit('er-1')); // filed before version 2 existed
    for (const deterministic of [true, false]) {
      const answer = await suppression.pseudonymize('email', [JOHN, JANE, null], { deterministic });
      expect(answer.erased).toEqual([1]);
      expect(answer.pseudonyms[1]).toBeNull();
      expect(answer.pseudonyms[0]).toMatch(deterministic ? /^s2\./ : /^r2\./);
    }
    // A hash context holds its own pseudonyms: nothing filed there, nothing withheld.
    expect((await suppression.pseudonymize('device_id', [JANE], { deterministic: true })).erased).toEqual([]);
    await ledger.close();
  });

  it('keeps per-item errors of the engine in order beside `erased`', async () => {
    const { engine, ledger, suppression } = setUp();
    const jane = engine.pseudonymize('email', [JANE], { deterministic: true }).pseudonyms[0]!;
    await ledger.create(filing('er-1', 'email', [jane]), audit('er-1'));
    const answer = await suppression.reidentify('email', ['s2.not-base64!', jane, 'h2.AAAA']);
    expect(answer.errors.map((e) => e.index)).toEqual([0, 1, 2]);
    expect(answer.errors[1]).toEqual({ index: 1, reason: 'erased' });
    await ledger.close();
  });

  it('reads the ledger at most once per bound: another process\'s filing shows within cacheSeconds, this process\'s at once', async () => {
    const { engine, ledger, file, suppression, clock } = setUp(10);
    const [jane, john] = engine.pseudonymize('email', [JANE, JOHN], { deterministic: true }).pseudonyms as string[];
    expect((await suppression.reidentify('email', [jane!])).values).toEqual([JANE]); // loads the (empty) set

    const other = new SqliteErasureLedger(file); // another process files Jane
    await other.create(filing('er-other', 'email', [jane!]), audit('er-other'));
    await other.close();
    clock.advance(4_000);
    expect((await suppression.reidentify('email', [jane!])).values).toEqual([JANE]); // fresh cache: not read again
    clock.advance(2_000); // past half the bound: this answer still comes from memory, a refresh starts behind it
    await suppression.reidentify('email', [jane!]);
    await new Promise((resolve) => setImmediate(resolve)); // the background read settles (SQLite answers at once)
    expect((await suppression.reidentify('email', [jane!])).errors).toEqual([{ index: 0, reason: 'erased' }]);

    // Filed through this process: in the ledger, and noted at once (the cached set is not read again yet).
    await ledger.create(filing('er-here', 'email', [john!]), audit('er-here'));
    suppression.noteFiled([{ context: 'email', pseudonyms: [john!] }]);
    expect((await suppression.reidentify('email', [john!])).errors).toEqual([{ index: 0, reason: 'erased' }]);
    clock.advance(60_000); // and after the next ledger read
    expect((await suppression.reidentify('email', [john!])).errors).toEqual([{ index: 0, reason: 'erased' }]);
    await ledger.close();
  });

  it('answers ledger-unavailable when the set is older than the bound and the ledger cannot be read, never unchecked', async () => {
    const { engine, ledger, suppression, clock } = setUp(5);
    const john = engine.pseudonymize('email', [JOHN], { deterministic: true }).pseudonyms[0]!;
    expect((await suppression.reidentify('email', [john])).values).toEqual([JOHN]);
    await ledger.close(); // every read fails from now on
    clock.advance(3_000); // within the bound: answered from memory (the background refresh fails and is counted)
    expect((await suppression.reidentify('email', [john])).values).toEqual([JOHN]);
    await new Promise((resolve) => setImmediate(resolve)); // the background read settles (SQLite answers at once)
    expect(suppression.refreshFailures).toBeGreaterThan(0);
    clock.advance(3_000);
    const refused = await suppression.reidentify('email', [john]).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(PlatformError);
    expect((refused as PlatformError).code).toBe('ledger-unavailable');
    const neverLoaded = await suppression.reidentify('vin', [john]).catch((error: unknown) => error);
    expect((neverLoaded as PlatformError).code).toBe('ledger-unavailable');
  });
});
