/**
 * The direct Arrow IPC writer of the answers (api/http/arrowStream.ts) against apache-arrow: what it writes reads back
 * with apache-arrow's reader as the same columns (values, nulls, names, types) as apache-arrow's own writer gives, for
 * random columns (empty, all null, multi-byte UTF-8, long values, a validity bitmap with stray bits past the end);
 * and pyarrow, the Spark client's reader, reads it too (spark-udfs/tests/test_client_arrow.py, through the API).
 */
import { execFileSync } from 'node:child_process';
import { makeData, makeVector, Table, tableFromIPC, tableToIPC, Utf8 } from 'apache-arrow';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { utf8Stream, type Utf8Column } from '../../api/http/arrowStream.ts';

function columnOf(name: string, items: readonly (string | null)[], strayBits: boolean): Utf8Column {
  const validity = new Uint8Array(Math.ceil(items.length / 8) + 1).fill(strayBits ? 0xff : 0);
  const offsets = new Int32Array(items.length + 1);
  const parts: Buffer[] = [];
  let at = 0;
  items.forEach((item, i) => {
    offsets[i] = at;
    if (item === null) validity[i >> 3]! &= ~(1 << (i & 7));
    else {
      validity[i >> 3]! |= 1 << (i & 7);
      const bytes = Buffer.from(item, 'utf8');
      parts.push(bytes);
      at += bytes.length;
    }
  });
  offsets[items.length] = at;
  const nullCount = items.filter((item) => item === null).length;
  return { name, length: items.length, nullCount, validity: nullCount > 0 ? validity : null, offsets, data: Buffer.concat(parts) };
}

/** The columns as apache-arrow's own writer writes them, read back. */
function viaApacheArrow(columns: readonly Utf8Column[]): Table {
  const vectors = Object.fromEntries(
    columns.map((c) => [c.name, makeVector(makeData({ type: new Utf8(), length: c.length, nullCount: c.nullCount, nullBitmap: c.validity, valueOffsets: c.offsets, data: c.data }))]),
  );
  return tableFromIPC(tableToIPC(new Table(vectors), 'stream'));
}

const rows = (table: Table): unknown[] => table.schema.fields.map((field) => table.getChild(field.name)!.toArray() as unknown);

describe('utf8Stream, the direct Arrow IPC writer of answers', () => {
  it('reads back as apache-arrow\'s own writer does, on random columns', () => {
    const item = fc.oneof(fc.constant(null), fc.string({ unit: 'grapheme', maxLength: 30 }), fc.string({ minLength: 100, maxLength: 300 }));
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 70 }).chain((length) => fc.tuple(fc.array(item, { minLength: length, maxLength: length }), fc.array(item, { minLength: length, maxLength: length }))), fc.boolean(), ([first, second], strayBits) => {
        const columns = [columnOf('pseudonyms', first, strayBits), columnOf('reason', second, strayBits)];
        const written = tableFromIPC(utf8Stream(columns));
        const expected = viaApacheArrow(columns);
        expect(written.schema.fields.map((f) => [f.name, String(f.type), f.nullable])).toEqual(expected.schema.fields.map((f) => [f.name, String(f.type), f.nullable]));
        expect(written.numRows).toBe(first.length);
        expect(rows(written)).toEqual(rows(expected));
        expect(written.getChild('pseudonyms')!.toArray()).toEqual(first);
      }),
      { numRuns: 300 },
    );
  });

  it('writes an all-null column and a column of empty strings apart, and a batch of no rows', () => {
    const table = tableFromIPC(utf8Stream([columnOf('values', ['', null, ''], false), columnOf('reason', [null, 'erased', null], false)]));
    expect(table.getChild('values')!.toArray()).toEqual(['', null, '']);
    expect(table.getChild('reason')!.toArray()).toEqual([null, 'erased', null]);
    expect(tableFromIPC(utf8Stream([columnOf('values', [], false), columnOf('reason', [], false)])).numRows).toBe(0);
  });

  it('is read by pyarrow, the Spark client\'s reader, with the same values', () => {
    const items = ['1HGCM82633A004352', null, 'jänë@example.com', '東京都', '', '😀'];
    const stream = utf8Stream([columnOf('pseudonyms', items, true), columnOf('reason', items.map((v) => (v === null ? 'erased' : null)), false)]);
    const script = 'import sys, json, pyarrow as pa; t = pa.ipc.open_stream(sys.stdin.buffer.read()).read_all(); print(json.dumps(t.to_pydict()))';
    const read = JSON.parse(execFileSync('.venv/bin/python', ['-c', script], { input: stream, encoding: 'utf8' })) as Record<string, unknown[]>;
    expect(read).toEqual({ pseudonyms: items, reason: items.map((v) => (v === null ? 'erased' : null)) });
  });
});
