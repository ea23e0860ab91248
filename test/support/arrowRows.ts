/**
 * Rows of an Arrow request column for the packed-path tests (test/engine/packed*.test.ts): a row is a null (whose slot
 * may still hold bytes), a text, or raw bytes that may not be UTF-8; the Arrow stream a client would send of them; and
 * what the string path reads from them.
 */
import { makeData, makeVector, Table, tableFromIPC, tableToIPC, Utf8 } from 'apache-arrow';
import type { Nullable } from '../../api/engine/engine.ts';
import { RequestError } from '../../api/errors.ts';

export type Row = { kind: 'null'; junk: Uint8Array } | { kind: 'text'; text: string } | { kind: 'bytes'; bytes: Uint8Array };

export const bytesOf = (row: Row): Uint8Array => (row.kind === 'null' ? row.junk : row.kind === 'text' ? Buffer.from(row.text, 'utf8') : row.bytes);

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
export function streamOf(rows: readonly Row[], split: number | undefined, lead: number): Buffer {
  const chunks = split === undefined ? [utf8Data(rows, lead)] : [utf8Data(rows.slice(0, split), lead), utf8Data(rows.slice(split), 0)];
  return Buffer.from(tableToIPC(new Table({ values: makeVector(chunks) }), 'stream'));
}

/** The columns of an Arrow answer. */
export function columnsOf(answer: Buffer): Record<string, (string | null)[]> {
  const table = tableFromIPC(answer);
  return Object.fromEntries(table.schema.fields.map((field) => [field.name, [...(table.getChild(field.name)!.toArray() as (string | null)[])]]));
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** The rows as the string path reads them (a strict decoder as the reference for UTF-8), or the route's refusal of a row that is not UTF-8. */
export function stringsOf(rows: readonly Row[]): Nullable<string>[] {
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
  return values;
}
