/**
 * Arrow IPC on the wire: the second body format of the batch routes (`application/vnd.apache.arrow.stream`).
 *
 * Request: one Arrow IPC *stream* (https://arrow.apache.org/docs/format/Columnar.html#ipc-streaming-format)
 * whose schema has exactly one field, Utf8 or LargeUtf8, nulls kept; any number of record batches. The route's
 * other fields (context, options) come from the query string, never values. Answer (when `Accept` names the
 * Arrow type): one stream of one record batch with two Utf8 columns, the route's answer column
 * (`pseudonyms` / `values`) and `reason`: null where the row was answered, else why it is null (`erased`, or a
 * reidentify failure such as `authentication-failed`). A column and not a header, because a header holding one
 * entry per failed row has no bound (clients and API Gateway cap header sizes). The key version of a
 * pseudonymize answer is the `pseudo-key-version` header.
 *
 * The request column is read from its offsets and data buffers as they lie in the body (no copy, no per-value
 * parsing): structure and UTF-8 are checked over whole buffers, and each value becomes a string only for the
 * engine, whose batch API takes strings; the answer is written straight into the Arrow data buffer.
 * A stream that is not one (truncated, wrong magic, compressed with a codec not available here, wrong offsets)
 * is a 400 `malformed-arrow`, never a 500; no message quotes the body.
 */
import { isAscii, isUtf8 } from 'node:buffer';
import { makeData, makeVector, RecordBatchReader, Table, tableToIPC, Type, Utf8, type DataType, type RecordBatchFileReader, type RecordBatchStreamReader } from 'apache-arrow';
import type { Nullable } from '../engine/engine.ts';
import { RequestError, type ItemProblem } from '../errors.ts';

export const ARROW_STREAM = 'application/vnd.apache.arrow.stream';

/** The column an answer's null rows are explained in. */
export const REASON_COLUMN = 'reason';

/** At most this many item problems are reported for one request (as for JSON bodies). */
const MAX_REPORTED_PROBLEMS = 20;

/** One record batch's column, as its buffers: item i is `data[offsets[first + i] .. offsets[first + i + 1])`. */
interface ColumnChunk {
  readonly length: number;
  /** Index of the chunk's first item in its buffers (a sliced batch starts past 0). */
  readonly first: number;
  readonly offsets: Int32Array | BigInt64Array;
  readonly data: Uint8Array;
  /** Bit (first + i) set when item i is present; undefined when the chunk has no nulls. */
  readonly validity: Uint8Array | undefined;
}

/** The one string column of an Arrow request, checked for structure; values are checked and read by `strings`. */
export class ArrowStringColumn {
  constructor(private readonly chunks: readonly ColumnChunk[]) {}

  get length(): number {
    let total = 0;
    for (const chunk of this.chunks) total += chunk.length;
    return total;
  }

  /**
   * The values as the engine takes them, nulls kept. 400 when there are more than `maxItems`, or when a value is
   * not valid UTF-8 (it must not become U+FFFD silently: two different inputs would share a pseudonym).
   */
  strings(field: string, maxItems: number): Nullable<string>[] {
    const count = this.length;
    if (count > maxItems) throw new RequestError('validation-failed', `${field}: at most ${maxItems} items per request`);
    const out = new Array<Nullable<string>>(count);
    const problems: ItemProblem[] = [];
    let index = 0;
    for (const chunk of this.chunks) {
      const data = Buffer.from(chunk.data.buffer, chunk.data.byteOffset, chunk.data.byteLength);
      const { first, offsets, validity } = chunk;
      const at = (i: number): number => Number(offsets[first + i]);
      const base = at(0);
      const whole = data.subarray(base, at(chunk.length));
      // All ASCII (identifiers mostly are): one string for the batch, each value a slice of it.
      const text = isAscii(whole) ? whole.toString('latin1') : undefined;
      // Otherwise: valid UTF-8 whose every item boundary falls on a character start makes every item valid.
      const wholeValid = text !== undefined || (isUtf8(whole) && boundariesOnCharacterStarts(data, chunk, at));
      for (let i = 0; i < chunk.length; i++, index++) {
        if (validity && (validity[(first + i) >> 3]! & (1 << ((first + i) & 7))) === 0) {
          out[index] = null;
          continue;
        }
        const start = at(i);
        const end = at(i + 1);
        if (text !== undefined) out[index] = text.slice(start - base, end - base);
        else if (wholeValid || isUtf8(data.subarray(start, end))) out[index] = data.toString('utf8', start, end);
        else {
          if (problems.length < MAX_REPORTED_PROBLEMS) problems.push({ index, reason: 'is not valid UTF-8' });
          out[index] = null;
        }
      }
    }
    if (problems.length > 0) throw new RequestError('validation-failed', `${field}: every item must be valid UTF-8 or null`, problems);
    return out;
  }
}

/** A UTF-8 continuation byte (10xxxxxx) never starts a character. */
function boundariesOnCharacterStarts(data: Buffer, chunk: ColumnChunk, at: (i: number) => number): boolean {
  for (let i = 1; i < chunk.length; i++) {
    const position = at(i);
    if (position < data.length && (data[position]! & 0xc0) === 0x80) return false;
  }
  return true;
}

function malformed(why: string): RequestError {
  return new RequestError('malformed-arrow', `the body is not an Arrow IPC stream of one UTF-8 column: ${why}`);
}

/**
 * The one string column of an Arrow IPC stream body. 413 over `maxBodyBytes`, 400 `malformed-arrow` for anything
 * that is not a well-formed stream, 400 `validation-failed` for a stream of another shape (columns, type).
 */
export function readArrowColumn(body: Buffer | undefined, maxBodyBytes: number): ArrowStringColumn {
  const bytes = body ?? Buffer.alloc(0);
  if (bytes.length > maxBodyBytes) throw new RequestError('payload-too-large', `the body is larger than ${maxBodyBytes} bytes`);
  if (bytes.length === 0) throw malformed('the body is empty');
  const chunks: ColumnChunk[] = [];
  // Typed as columns of any Arrow type: the one column's type is checked below.
  let reader: RecordBatchFileReader<Record<string, DataType>> | RecordBatchStreamReader<Record<string, DataType>>;
  try {
    reader = RecordBatchReader.from<Record<string, DataType>>(bytes);
    reader.open();
  } catch {
    // The reader's own message may quote bytes of the body: never pass it on.
    throw malformed('its schema message cannot be read');
  }
  if (reader.isFile()) throw malformed('send the streaming format, not the file format');
  const fields = reader.schema.fields;
  if (fields.length !== 1) throw new RequestError('validation-failed', `body: an Arrow stream of exactly one column (this one has ${fields.length})`);
  const typeId = fields[0]!.type.typeId;
  if (typeId !== Type.Utf8 && typeId !== Type.LargeUtf8) throw new RequestError('validation-failed', 'body: the column must be Arrow Utf8 or LargeUtf8 (strings; dictionary and view types are not taken)');
  try {
    for (const batch of reader) {
      const data = batch.data.children[0];
      if (!data) throw malformed('a record batch has no column');
      // A stream that declares null_count 0 yet marks items null in its bitmap gets them read as strings:
      // apache-arrow's reader does not load the bitmap then. It only affects the sender's own answer.
      chunks.push(checkedChunk(data.length, data.offset, data.valueOffsets, data.values, data.nullCount > 0 ? data.nullBitmap : undefined));
    }
  } catch (error) {
    if (error instanceof RequestError) throw error;
    throw malformed('a record batch cannot be read');
  }
  return new ArrowStringColumn(chunks);
}

/** The buffers of one batch, checked: offsets in range and never decreasing, the validity bitmap long enough. */
function checkedChunk(length: number, first: number, offsets: unknown, data: unknown, validity: unknown): ColumnChunk {
  if (!(offsets instanceof Int32Array || offsets instanceof BigInt64Array) || !(data instanceof Uint8Array)) throw malformed('a batch lacks its offsets or data');
  if (!Number.isSafeInteger(length) || length < 0 || first < 0 || offsets.length < first + length + 1) throw malformed('a batch has fewer offsets than items');
  let previous = Number(offsets[first]);
  if (previous < 0) throw malformed('an offset is out of range');
  for (let i = first + 1; i <= first + length; i++) {
    const next = Number(offsets[i]);
    if (next < previous) throw malformed('offsets decrease');
    previous = next;
  }
  if (previous > data.length) throw malformed('an offset is past the end of the data');
  if (validity === undefined) return { length, first, offsets, data, validity };
  if (!(validity instanceof Uint8Array) || validity.length * 8 < first + length) throw malformed('the validity bitmap is shorter than the batch');
  return { length, first, offsets, data, validity };
}

/** True when the Accept header names the Arrow stream type with a quality above 0 (`;q=0` means "not this"). */
export function acceptsArrow(accept: string | undefined): boolean {
  return (accept ?? '').split(',').some((range) => {
    const [type = '', ...parameters] = range.split(';').map((part) => part.trim().toLowerCase());
    const quality = parameters.find((parameter) => parameter.startsWith('q='));
    return type === ARROW_STREAM && (quality === undefined || Number(quality.slice(2)) > 0);
  });
}

/**
 * A Utf8 column built into its buffers directly: the present items joined and encoded in one call (per-item writes
 * cost more than the encoding), offsets from the items' lengths when the text is ASCII (pseudonyms are), else
 * from each item's UTF-8 length.
 */
function utf8Data(items: readonly Nullable<string>[]) {
  const count = items.length;
  const offsets = new Int32Array(count + 1);
  const validity = new Uint8Array(Math.ceil(count / 8));
  const present: string[] = [];
  for (let i = 0; i < count; i++) {
    const item = items[i];
    if (item === null || item === undefined) continue;
    validity[i >> 3]! |= 1 << (i & 7);
    present.push(item);
  }
  const joined = present.join('');
  const data = Buffer.from(joined, 'utf8');
  const ascii = data.length === joined.length;
  let at = 0;
  for (let i = 0; i < count; i++) {
    offsets[i] = at;
    const item = items[i];
    if (item !== null && item !== undefined) at += ascii ? item.length : Buffer.byteLength(item, 'utf8');
  }
  offsets[count] = at;
  const nullCount = count - present.length;
  return makeData({ type: new Utf8(), length: count, nullCount, nullBitmap: nullCount > 0 ? validity : null, valueOffsets: offsets, data });
}

/**
 * An Arrow answer: `column` holds the answers in input order, `reason` says why a row is null where the service
 * withheld or could not answer it (null elsewhere, and for null inputs).
 */
export function arrowAnswer(column: string, answers: readonly Nullable<string>[], reasons: readonly ItemProblem[]): Buffer {
  const reasonColumn = new Array<Nullable<string>>(answers.length).fill(null);
  for (const { index, reason } of reasons) reasonColumn[index] = reason;
  const table = new Table({ [column]: makeVector(utf8Data(answers)), [REASON_COLUMN]: makeVector(utf8Data(reasonColumn)) });
  const stream = tableToIPC(table, 'stream');
  return Buffer.from(stream.buffer, stream.byteOffset, stream.byteLength);
}
