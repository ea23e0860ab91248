/**
 * The packed path (an Arrow column's UTF-8 buffers into the engine, the pseudonyms' bytes into the Arrow answer)
 * against the string path, as properties over random batches: the same answers bit for bit, nulls kept (also null
 * slots holding bytes, several record batches), erased subjects withheld the same way (filed under the active or
 * only an older key version), and the same refusals with the same per-item problems (invalid UTF-8, too long).
 * With the engine's cache on, the packed cache answers as the string path and an uncached engine do over batches
 * that repeat values (also values whose UTF-8 bytes read as latin1 are another value's string), and a rotation
 * leaves no stale pseudonym in it.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import type { Nullable, PackedTexts, PseudonymEngine } from '../../api/engine/engine.ts';
import { formatPseudonymsPacked, parsePseudonymHeader, pseudonymFormatter } from '../../api/engine/pseudonymFormat.ts';
import { SqliteErasureLedger } from '../../api/erasure/sqliteLedger.ts';
import { engineOperations, ErasureSuppression, type PseudonymOperations } from '../../api/erasure/suppression.ts';
import { PlatformError } from '../../api/errors.ts';
import { arrowAnswer, arrowAnswerPacked, readArrowColumn } from '../../api/http/arrow.ts';
import { columnsOf, streamOf, stringsOf, type Row } from '../support/arrowRows.ts';
import { engineOf, keyringOf } from '../support/engine.ts';

const JANE = 'sentinel.jane.packed@example.com'; // filed under the older version 1 only
const JOHN = 'sentinel.john.packed@example.com'; // filed under the active version 2
const ANNA = 'anna@example.com';
const MAX_VALUES = 10_000;
const MAX_VALUE_BYTES = 1024; // engineOf's limit

const keyring = keyringOf([
  { version: 1, state: 'decrypt-only', root: randomBytes(64) },
  { version: 2, state: 'active', root: randomBytes(64) },
  { version: 3, state: 'destroyed' },
]);
const engine = engineOf(keyring, 0);
const cachedEngine = engineOf(keyring, 64);
const ledger = new SqliteErasureLedger(join(mkdtempSync(join(tmpdir(), 'packed-')), 'erasure.db'));
const suppression = new ErasureSuppression(ledger, engine, keyring, { cacheSeconds: 3600 });
const cachedSuppression = new ErasureSuppression(ledger, cachedEngine, keyring, { cacheSeconds: 3600 });
const [jane, john] = suppression.pseudonymsInEveryVersion('email', [JANE, JOHN]);
await ledger.create(
  { id: 'er-packed', reference: 'er-packed', reason: 'gdpr-art17-1a', filedBy: 'person:olivia', subjects: [{ context: 'email', pseudonyms: [jane![0]!, john![1]!] }], tables: [] },
  { actor: 'person:olivia', action: 'erasure.filed', requestId: 'er-packed', outcome: 'received' },
);
afterAll(async () => {
  await ledger.close();
});


const rowArbitrary: fc.Arbitrary<Row> = fc.oneof(
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 3 }).map((junk): Row => ({ kind: 'null', junk })) },
  { weight: 4, arbitrary: fc.constantFrom(JANE, JOHN, ANNA, '', 'jänë@example.com', '東京都', '😀').map((text): Row => ({ kind: 'text', text })) },
  { weight: 4, arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }).map((text): Row => ({ kind: 'text', text })) },
  { weight: 1, arbitrary: fc.integer({ min: MAX_VALUE_BYTES - 2, max: MAX_VALUE_BYTES + 3 }).map((length): Row => ({ kind: 'text', text: 'x'.repeat(length) })) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 6 }).map((bytes): Row => ({ kind: 'bytes', bytes })) },
);

type Outcome = { columns: Record<string, (string | null)[]> } | { code: string; message: string; problems: unknown };

async function outcomeOf(run: () => Promise<Buffer>): Promise<Outcome> {
  try {
    return { columns: columnsOf(await run()) };
  } catch (error) {
    if (!(error instanceof PlatformError)) throw error;
    return { code: error.code, message: error.message, problems: error.details };
  }
}

/** The string path: each row decoded on its own (a strict decoder as the reference for UTF-8), then `pseudonymize`. */
async function stringPath(operations: PseudonymOperations, rows: readonly Row[]): Promise<Buffer> {
  const values = stringsOf(rows);
  const { pseudonyms, erased } = await operations.pseudonymize('email', values, { deterministic: true });
  return arrowAnswer('pseudonyms', pseudonyms, erased.map((index) => ({ index, reason: 'erased' })));
}

/** The packed path as the route runs it: the stream's buffers to `pseudonymizePacked`, its output into the answer. */
async function packedPath(operations: PseudonymOperations, body: Buffer): Promise<Buffer> {
  const values = readArrowColumn(body, 1 << 30).packed('values', MAX_VALUES);
  const { pseudonyms, erased } = await operations.pseudonymizePacked('email', values, { deterministic: true });
  return arrowAnswerPacked('pseudonyms', pseudonyms, erased.map((index) => ({ index, reason: 'erased' })));
}

describe('the packed path', () => {
  it('formats pseudonym text bit for bit as the string formatter does', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 70 }), { maxLength: 20 }), fc.integer({ min: 1, max: 2 ** 31 - 1 }), (payloads, version) => {
        const offsets = new Int32Array(payloads.length + 1);
        payloads.forEach((payload, i) => {
          offsets[i + 1] = offsets[i]! + payload.length;
        });
        const data = Buffer.concat(payloads);
        const packed = formatPseudonymsPacked('deterministic', version, { data, offsets });
        const format = pseudonymFormatter('deterministic', version);
        const texts = payloads.map((_, i) => packed.data.toString('latin1', packed.offsets[i], packed.offsets[i + 1]));
        expect(texts).toEqual(payloads.map((_, i) => format(data, offsets[i], offsets[i + 1])));
      }),
    );
  });

  for (const [name, operations] of [
    ['behind erasure suppression', suppression],
    ['without erasure', engineOperations(engine)],
    ['behind erasure suppression, cache on', cachedSuppression],
    ['without erasure, cache on', engineOperations(cachedEngine)],
  ] as const) {
    it(`answers as the string path does, ${name}: nulls, withheld subjects, per-item refusals`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(rowArbitrary, { maxLength: 40 }), fc.option(fc.nat()), fc.nat({ max: 5 }), async (rows, splitAt, lead) => {
          const split = splitAt === null || rows.length < 2 ? undefined : 1 + (splitAt % (rows.length - 1));
          const expected = await outcomeOf(() => stringPath(operations, rows));
          const actual = await outcomeOf(() => packedPath(operations, streamOf(rows, split, lead)));
          expect(actual).toEqual(expected);
        }),
        { numRuns: 150 },
      );
    });
  }

  it('withholds a subject filed through this process at once, before the next ledger read', async () => {
    const rows: Row[] = [ANNA, JANE].map((text) => ({ kind: 'text', text }));
    const before = columnsOf(await packedPath(suppression, streamOf(rows, undefined, 0))); // the set is loaded and cached
    expect(before.reason).toEqual([null, 'erased']);
    const [anna] = suppression.pseudonymsInEveryVersion('email', [ANNA]);
    suppression.noteFiled([{ context: 'email', pseudonyms: [anna![1]!] }]);
    try {
      expect(columnsOf(await packedPath(suppression, streamOf(rows, undefined, 0)))).toEqual({ pseudonyms: [null, null], reason: ['erased', 'erased'] });
    } finally {
      suppression.noteLifted([{ context: 'email', pseudonyms: [anna![1]!] }]);
    }
    expect(columnsOf(await packedPath(suppression, streamOf(rows, undefined, 0))).reason).toEqual([null, 'erased']);
  });

  it('withholds erased subjects without leaving their pseudonyms in the answer bytes', async () => {
    const rows: Row[] = [JANE, ANNA, JOHN, ANNA].map((text) => ({ kind: 'text', text }));
    const answer = await packedPath(suppression, streamOf(rows, undefined, 0));
    expect(columnsOf(answer)).toEqual({ pseudonyms: [null, expect.any(String), null, expect.any(String)], reason: ['erased', null, 'erased', null] });
    for (const pseudonym of [...jane!, ...john!]) expect(answer.includes(Buffer.from(pseudonym))).toBe(false);
  });
});

/** A packed answer's texts (pseudonyms are ASCII), null where its bitmap says so. */
function textsOf(packed: PackedTexts): Nullable<string>[] {
  const bytes = Buffer.from(packed.data.buffer, packed.data.byteOffset, packed.data.byteLength);
  return Array.from({ length: packed.offsets.length - 1 }, (_, i) =>
    packed.validity && (packed.validity[i >> 3]! & (1 << (i & 7))) === 0 ? null : bytes.toString('latin1', packed.offsets[i], packed.offsets[i + 1]),
  );
}

/** Texts (or nulls) as the packed batch the route hands the engine. */
function packedOf(values: readonly Nullable<string>[], split?: number, lead = 0): PackedTexts {
  const rows = values.map((text): Row => (text === null ? { kind: 'null', junk: new Uint8Array(0) } : { kind: 'text', text }));
  return readArrowColumn(streamOf(rows, split, lead), 1 << 30).packed('values', MAX_VALUES);
}

function lookups(of: PseudonymEngine): number {
  return of.cacheHits + of.cacheMisses;
}

describe('the packed path with the cache on', () => {
  // The latin1 readings of 'é' and '😀''s UTF-8 bytes are the JS strings 'Ã©' and 'ð\u009f\u0098\u0080': one key space for
  // both caches would answer one with the other's pseudonym.
  const POOL = ['é', 'Ã©', '😀', 'ð\u009f\u0098\u0080', 'jänë@example.com', 'jÃ¤nÃ«@example.com', ANNA, JANE, '', '東京都'];
  const valueArbitrary: fc.Arbitrary<Nullable<string>> = fc.oneof(
    { weight: 1, arbitrary: fc.constant(null) },
    { weight: 6, arbitrary: fc.constantFrom(...POOL) },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 6 }) },
  );
  const stepArbitrary = fc.record({
    values: fc.array(valueArbitrary, { maxLength: 30 }),
    splitAt: fc.option(fc.nat()),
    lead: fc.nat({ max: 3 }),
    packedFirst: fc.boolean(),
    rotate: fc.nat({ max: 4 }).map((n) => n === 0),
  });

  it('answers as the string path and an uncached engine do, over repeated batches and rotations', () => {
    fc.assert(
      fc.property(fc.array(stepArbitrary, { minLength: 1, maxLength: 8 }), fc.integer({ min: 1, max: 12 }), (steps, cacheEntries) => {
        const versions: { version: number; state: 'active' | 'decrypt-only'; root: Uint8Array }[] = [{ version: 1, state: 'active', root: randomBytes(64) }];
        const rotating = keyringOf(versions);
        const cached = engineOf(rotating, cacheEntries); // small: entries are evicted too
        const reference = engineOf(rotating, 0);
        for (const { values, splitAt, lead, packedFirst, rotate } of steps) {
          if (rotate) {
            for (const entry of versions) entry.state = 'decrypt-only';
            versions.push({ version: versions.length + 1, state: 'active', root: randomBytes(64) });
            rotating.apply(versions.map((entry) => ({ version: entry.version, state: entry.state, createdAt: '2026-01-01T00:00:00.000Z', material: Uint8Array.from(entry.root) })));
          }
          const split = splitAt === null || values.length < 2 ? undefined : 1 + (splitAt % (values.length - 1));
          const viaPacked = (): Nullable<string>[] => {
            const before = lookups(cached);
            const answer = cached.pseudonymizePacked('email', packedOf(values, split, lead), { deterministic: true });
            expect(answer.keyVersion).toBe(versions.length);
            expect(lookups(cached) - before).toBe(values.filter((value) => value !== null).length);
            return textsOf(answer.pseudonyms);
          };
          const viaStrings = (): Nullable<string>[] => cached.pseudonymize('email', values, { deterministic: true }).pseudonyms;
          let packed: Nullable<string>[];
          let strings: Nullable<string>[];
          if (packedFirst) {
            packed = viaPacked();
            strings = viaStrings();
          } else {
            strings = viaStrings();
            packed = viaPacked();
          }
          const expected = reference.pseudonymize('email', values, { deterministic: true }).pseudonyms;
          expect(packed).toEqual(expected);
          expect(strings).toEqual(expected);
          for (const pseudonym of packed) if (pseudonym !== null) expect(parsePseudonymHeader(pseudonym)?.version).toBe(versions.length);
        }
      }),
      { numRuns: 120 },
    );
  });

  it('answers a repeated batch from the cache, and keeps a value apart from the string its bytes read as in latin1', () => {
    const cached = engineOf(keyring, 100);
    const reference = engineOf(keyring, 0);
    const expected = reference.pseudonymize('email', ['é', 'Ã©', null, ANNA], { deterministic: true }).pseudonyms;
    expect(cached.pseudonymize('email', ['Ã©'], { deterministic: true }).pseudonyms).toEqual([expected[1]]);
    const first = cached.pseudonymizePacked('email', packedOf(['é', 'Ã©', null, ANNA]), { deterministic: true });
    expect(textsOf(first.pseudonyms)).toEqual(expected);
    const hits = cached.cacheHits;
    const misses = cached.cacheMisses;
    const again = cached.pseudonymizePacked('email', packedOf([ANNA, null, 'Ã©', 'é']), { deterministic: true });
    expect(textsOf(again.pseudonyms)).toEqual([...expected].reverse());
    expect([cached.cacheHits - hits, cached.cacheMisses - misses]).toEqual([3, 0]);
    expect(cached.pseudonymize('email', ['é'], { deterministic: true }).pseudonyms).toEqual([expected[0]]);
  });

  it('caches a recurring batch again after distinct values filled the cache (admitting few of a batch it misses whole)', () => {
    const cached = engineOf(keyring, 50);
    const distinct = (from: number): string[] => Array.from({ length: 100 }, (_, i) => `flood-${from + i}@example.com`);
    for (let from = 0; from < 400; from += 100) cached.pseudonymizePacked('email', packedOf(distinct(from)), { deterministic: true });
    expect(cached.cacheSize).toBe(50);
    const recurring = Array.from({ length: 40 }, (_, i) => `recurring-${i}@example.com`);
    const expected = engineOf(keyring, 0).pseudonymize('email', recurring, { deterministic: true }).pseudonyms;
    const missesPerCall = [0, 1, 2].map(() => {
      const misses = cached.cacheMisses;
      expect(textsOf(cached.pseudonymizePacked('email', packedOf(recurring), { deterministic: true }).pseudonyms)).toEqual(expected);
      return cached.cacheMisses - misses;
    });
    expect(missesPerCall[0]).toBe(40);
    expect(missesPerCall[1]).toBeLessThan(40);
    expect(missesPerCall[2]).toBe(0);
  });

  it('encrypts a large batch of distinct values against a full cache after looking up a sample of 256, and still learns values that recur', () => {
    const cached = engineOf(keyring, 300);
    const reference = engineOf(keyring, 0);
    const distinct = (from: number, count: number): string[] => Array.from({ length: count }, (_, i) => `fact-${from + i}@example.com`);
    cached.pseudonymizePacked('email', packedOf(distinct(0, 600)), { deterministic: true });
    expect(cached.cacheSize).toBe(300);
    // A batch of 2,000 distinct values with nulls among them: 256 lookups, not 2,000, and the same answers.
    const batch: Nullable<string>[] = distinct(10_000, 2000).map((value, i) => (i % 97 === 5 ? null : value));
    const lookups = cached.cacheHits + cached.cacheMisses;
    expect(textsOf(cached.pseudonymizePacked('email', packedOf(batch), { deterministic: true }).pseudonyms)).toEqual(reference.pseudonymize('email', batch, { deterministic: true }).pseudonyms);
    expect(cached.cacheHits + cached.cacheMisses - lookups).toBe(256);
    // The same large batch again and again: sampled misses are admitted (one in 16), the sample starts to hit, and the
    // batches go back to a lookup per value, answered ever more from the cache; the answers never change.
    const recurring = distinct(50_000, 1000);
    const expected = reference.pseudonymize('email', recurring, { deterministic: true }).pseudonyms;
    const hitsPerCall = Array.from({ length: 6 }, () => {
      const hits = cached.cacheHits;
      expect(textsOf(cached.pseudonymizePacked('email', packedOf(recurring), { deterministic: true }).pseudonyms)).toEqual(expected);
      return cached.cacheHits - hits;
    });
    expect(hitsPerCall[0]).toBe(0);
    expect(hitsPerCall[5]).toBeGreaterThan(256);
  });

  it('drops its entries on a key rotation: no pseudonym of the old version is answered', () => {
    const versions = [{ version: 1, root: randomBytes(64) }, { version: 2, root: randomBytes(64) }];
    const rotating = keyringOf([{ version: 1, state: 'active', root: versions[0]!.root }]);
    const cached = engineOf(rotating, 100);
    const before = textsOf(cached.pseudonymizePacked('email', packedOf([ANNA, 'é']), { deterministic: true }).pseudonyms);
    expect(before.map((pseudonym) => parsePseudonymHeader(pseudonym!)?.version)).toEqual([1, 1]);
    rotating.apply([
      { version: 1, state: 'decrypt-only', createdAt: '2026-01-01T00:00:00.000Z', material: Uint8Array.from(versions[0]!.root) },
      { version: 2, state: 'active', createdAt: '2026-01-01T00:00:00.000Z', material: Uint8Array.from(versions[1]!.root) },
    ]);
    const misses = cached.cacheMisses;
    const after = cached.pseudonymizePacked('email', packedOf([ANNA, 'é']), { deterministic: true });
    expect(after.keyVersion).toBe(2);
    expect(cached.cacheMisses - misses).toBe(2);
    expect(textsOf(after.pseudonyms)).toEqual(engineOf(rotating, 0).pseudonymize('email', [ANNA, 'é'], { deterministic: true }).pseudonyms);
  });
});
