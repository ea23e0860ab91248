/**
 * The packed path (an Arrow column's UTF-8 buffers into the engine, the pseudonyms' bytes into the Arrow answer)
 * against the string path, as properties over random batches: the same answers bit for bit, nulls kept (also null
 * slots holding bytes, several record batches), erased subjects withheld the same way (filed under the active or
 * only an older key version), and the same refusals with the same per-item problems (invalid UTF-8, too long).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeData, makeVector, Table, tableFromIPC, tableToIPC, Utf8 } from 'apache-arrow';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { formatPseudonymsPacked, pseudonymFormatter } from '../../api/engine/pseudonymFormat.ts';
import { SqliteErasureLedger } from '../../api/erasure/sqliteLedger.ts';
import { engineOperations, ErasureSuppression, type PseudonymOperations } from '../../api/erasure/suppression.ts';
import { PlatformError, RequestError } from '../../api/errors.ts';
import { arrowAnswer, arrowAnswerPacked, readArrowColumn } from '../../api/http/arrow.ts';
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
const ledger = new SqliteErasureLedger(join(mkdtempSync(join(tmpdir(), 'packed-')), 'erasure.db'));
const suppression = new ErasureSuppression(ledger, engine, keyring, { cacheSeconds: 3600 });
const [jane, john] = suppression.pseudonymsInEveryVersion('email', [JANE, JOHN]);
await ledger.create(
  { id: 'er-packed', reference: 'er-packed', reason: 'gdpr-art17-1a', filedBy: 'person:olivia', subjects: [{ context: 'email', pseudonyms: [jane![0]!, john![1]!] }], tables: [] },
  { actor: 'person:olivia', action: 'erasure.filed', requestId: 'er-packed', outcome: 'received' },
);
afterAll(async () => {
  await ledger.close();
});

/** One row of a request: null (its slot may hold bytes), a text, or raw bytes that may not be UTF-8. */
type Row = { kind: 'null'; junk: Uint8Array } | { kind: 'text'; text: string } | { kind: 'bytes'; bytes: Uint8Array };

const rowArbitrary: fc.Arbitrary<Row> = fc.oneof(
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 3 }).map((junk): Row => ({ kind: 'null', junk })) },
  { weight: 4, arbitrary: fc.constantFrom(JANE, JOHN, ANNA, '', 'jänë@example.com', '東京都', '😀').map((text): Row => ({ kind: 'text', text })) },
  { weight: 4, arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }).map((text): Row => ({ kind: 'text', text })) },
  { weight: 1, arbitrary: fc.integer({ min: MAX_VALUE_BYTES - 2, max: MAX_VALUE_BYTES + 3 }).map((length): Row => ({ kind: 'text', text: 'x'.repeat(length) })) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 6 }).map((bytes): Row => ({ kind: 'bytes', bytes })) },
);

const bytesOf = (row: Row): Uint8Array => (row.kind === 'null' ? row.junk : row.kind === 'text' ? Buffer.from(row.text, 'utf8') : row.bytes);

/** A Utf8 record batch's data of these rows; `lead` bytes before the first item. */
function utf8Data(rows: readonly Row[], lead: number) {
  const parts = rows.map(bytesOf);
  const offsets = new Int32Array(rows.length + 1);
  let at = lead;
  parts.forEach((part, i) => {
    offsets[i] = at;
    at += part.length;
  });
  offsets[rows.length] = at;
  const data = new Uint8Array(at);
  parts.forEach((part, i) => {
    data.set(part, offsets[i]);
  });
  const validity = new Uint8Array(Math.ceil(rows.length / 8));
  rows.forEach((row, i) => {
    if (row.kind !== 'null') validity[i >> 3]! |= 1 << (i & 7);
  });
  const nullCount = rows.filter((row) => row.kind === 'null').length;
  return makeData({ type: new Utf8(), length: rows.length, nullCount, nullBitmap: nullCount > 0 ? validity : null, valueOffsets: offsets, data });
}

/** An Arrow IPC stream of the rows, in one or two record batches. */
function streamOf(rows: readonly Row[], split: number | undefined, lead: number): Buffer {
  const chunks = split === undefined ? [utf8Data(rows, lead)] : [utf8Data(rows.slice(0, split), lead), utf8Data(rows.slice(split), 0)];
  return Buffer.from(tableToIPC(new Table({ values: makeVector(chunks) }), 'stream'));
}

type Outcome = { columns: Record<string, (string | null)[]> } | { code: string; message: string; problems: unknown };

function columnsOf(answer: Buffer): Record<string, (string | null)[]> {
  const table = tableFromIPC(answer);
  return Object.fromEntries(table.schema.fields.map((field) => [field.name, [...(table.getChild(field.name)!.toArray() as (string | null)[])]]));
}

async function outcomeOf(run: () => Promise<Buffer>): Promise<Outcome> {
  try {
    return { columns: columnsOf(await run()) };
  } catch (error) {
    if (!(error instanceof PlatformError)) throw error;
    return { code: error.code, message: error.message, problems: error.details };
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** The string path: each row decoded on its own (a strict decoder as the reference for UTF-8), then `pseudonymize`. */
async function stringPath(operations: PseudonymOperations, rows: readonly Row[]): Promise<Buffer> {
  const invalid: { index: number; reason: string }[] = [];
  const values = rows.map((row, index) => {
    if (row.kind === 'null') return null;
    try {
      return strictUtf8.decode(bytesOf(row));
    } catch {
      if (invalid.length < 20) invalid.push({ index, reason: 'is not valid UTF-8' });
      return null;
    }
  });
  if (invalid.length > 0) throw new RequestError('validation-failed', 'values: every item must be valid UTF-8 or null', invalid);
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
