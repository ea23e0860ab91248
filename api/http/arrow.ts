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
 * The request column is read from its offsets and data buffers as they lie in the body (no copy when the stream
 * holds one record batch, no per-value parsing): structure and UTF-8 are checked over whole buffers. Where the
 * engine takes packed batches (`PseudonymEngine.takesPacked` for pseudonymize, `takesPackedTokens` for reidentify and
 * rewrap) those buffers go to it as they are and the answer's column is its output buffers, so no value or pseudonym
 * becomes a JavaScript string; elsewhere (FF1 contexts, AWS sample keys, an Arrow body answered as JSON) each value
 * becomes a string for the engine's string API and the answer is joined into the Arrow data buffer.
 * A stream that is not one (truncated, wrong magic, compressed with a codec not available here, wrong offsets)
 * is a 400 `malformed-arrow`, never a 500; no message quotes the body.
 */
import { isAscii, isUtf8 } from 'node:buffer';
import { RecordBatchReader, Type, type DataType, type RecordBatchFileReader, type RecordBatchStreamReader } from 'apache-arrow';
import type { Nullable, PackedTexts } from '../engine/engine.ts';
import { RequestError, type ItemProblem } from '../errors.ts';
import { utf8Stream, type Utf8Column } from './arrowStream.ts';

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
   * The values as one packed batch (the buffers of the body when it holds one record batch of Utf8, else one copy),
   * nulls kept. 400 when there are more than `maxItems`, or when a value is not valid UTF-8 (it must not become
   * U+FFFD silently: two different inputs would share a pseudonym).
   */
  packed(field: string, maxItems: number): PackedTexts {
    const count = this.length;
    if (count > maxItems) throw new RequestError('validation-failed', `${field}: at most ${maxItems} items per request`);
    const batch = this.chunks.length === 1 && this.chunks[0]!.offsets instanceof Int32Array ? chunkAsBatch(this.chunks[0]!) : concatenated(this.chunks);
    const problems = utf8Problems(batch);
    if (problems.length > 0) throw new RequestError('validation-failed', `${field}: every item must be valid UTF-8 or null`, problems);
    return batch;
  }

}

function isPresent(validity: Uint8Array | undefined, i: number): boolean {
  return validity === undefined || (validity[i >> 3]! & (1 << (i & 7))) !== 0;
}

/** One record batch's buffers as they lie in the body; only a bitmap starting inside a byte is shifted. */
function chunkAsBatch(chunk: ColumnChunk): PackedTexts {
  const { first, length } = chunk;
  const offsets = (chunk.offsets as Int32Array).subarray(first, first + length + 1);
  let validity: Uint8Array | undefined;
  if (chunk.validity && (first & 7) === 0) validity = chunk.validity.subarray(first >> 3, (first >> 3) + Math.ceil(length / 8));
  else if (chunk.validity) {
    validity = new Uint8Array(Math.ceil(length / 8));
    for (let i = 0; i < length; i++) if (isPresent(chunk.validity, first + i)) validity[i >> 3]! |= 1 << (i & 7);
  }
  // A Buffer view, as the JSON path's packed values are: the engine's byte loops then see one type (faster in V8).
  return { data: asBuffer(chunk.data), offsets, validity };
}

/** Several record batches (or 64-bit offsets) as one batch: the bytes copied once, offsets from 0. */
function concatenated(chunks: readonly ColumnChunk[]): PackedTexts {
  let count = 0;
  let bytes = 0;
  let hasNulls = false;
  for (const chunk of chunks) {
    count += chunk.length;
    bytes += Number(chunk.offsets[chunk.first + chunk.length]) - Number(chunk.offsets[chunk.first]);
    hasNulls ||= chunk.validity !== undefined;
  }
  if (bytes > 0x7fffffff) throw new RequestError('payload-too-large', 'the column holds more than 2 GiB of text');
  const data = Buffer.alloc(bytes);
  const offsets = new Int32Array(count + 1);
  const validity = hasNulls ? new Uint8Array(Math.ceil(count / 8)) : undefined;
  let index = 0;
  let at = 0;
  for (const chunk of chunks) {
    const { first, length } = chunk;
    const base = Number(chunk.offsets[first]);
    const end = Number(chunk.offsets[first + length]);
    data.set(chunk.data.subarray(base, end), at);
    for (let i = 0; i < length; i++, index++) {
      offsets[index] = at + Number(chunk.offsets[first + i]) - base;
      if (validity && isPresent(chunk.validity, first + i)) validity[index >> 3]! |= 1 << (index & 7);
    }
    at += end - base;
  }
  offsets[count] = at;
  return { data, offsets, validity };
}

/** Items that are not valid UTF-8 (at most MAX_REPORTED_PROBLEMS): checked over the whole buffer first. */
function utf8Problems(batch: PackedTexts): ItemProblem[] {
  const { offsets, validity } = batch;
  const count = offsets.length - 1;
  const data = asBuffer(batch.data);
  const whole = data.subarray(offsets[0], offsets[count]);
  // All ASCII (identifiers mostly are), or valid UTF-8 whose every item boundary falls on a character start.
  if (isAscii(whole) || (isUtf8(whole) && boundariesOnCharacterStarts(data, offsets))) return [];
  const problems: ItemProblem[] = [];
  for (let i = 0; i < count && problems.length < MAX_REPORTED_PROBLEMS; i++) {
    if (isPresent(validity, i) && !isUtf8(data.subarray(offsets[i], offsets[i + 1]))) problems.push({ index: i, reason: 'is not valid UTF-8' });
  }
  return problems;
}

/** The values as the engine's string API takes them, nulls kept: an all-ASCII batch is decoded once and sliced. */
export function packedStrings(batch: PackedTexts): Nullable<string>[] {
  const { offsets, validity } = batch;
  const count = offsets.length - 1;
  const data = asBuffer(batch.data);
  const base = offsets[0]!;
  const whole = data.subarray(base, offsets[count]);
  const text = isAscii(whole) ? whole.toString('latin1') : undefined;
  const out = new Array<Nullable<string>>(count);
  for (let i = 0; i < count; i++) {
    if (!isPresent(validity, i)) out[i] = null;
    else if (text !== undefined) out[i] = text.slice(offsets[i]! - base, offsets[i + 1]! - base);
    else out[i] = data.toString('utf8', offsets[i], offsets[i + 1]);
  }
  return out;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A UTF-8 continuation byte (10xxxxxx) never starts a character. */
function boundariesOnCharacterStarts(data: Buffer, offsets: Int32Array): boolean {
  for (let i = 1; i + 1 < offsets.length; i++) {
    const position = offsets[i]!;
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
function utf8Column(name: string, items: readonly Nullable<string>[]): Utf8Column {
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
  return { name, length: count, nullCount: count - present.length, validity, offsets, data };
}

/**
 * An Arrow answer as `arrowAnswer` writes it, from the engine's packed output (no string per item), written straight
 * into one buffer by `utf8Stream` (api/http/arrowStream.ts) instead of through apache-arrow's Table and writer.
 */
export function arrowAnswerPacked(column: string, answers: PackedTexts, reasons: readonly ItemProblem[]): Buffer {
  const count = answers.offsets.length - 1;
  const base = answers.offsets[0]!;
  const offsets = base === 0 ? answers.offsets : answers.offsets.map((offset) => offset - base);
  let nullCount = 0;
  for (let i = 0; i < count; i++) if (!isPresent(answers.validity, i)) nullCount++;
  const answerColumn = { name: column, length: count, nullCount, validity: answers.validity ?? null, offsets, data: answers.data.subarray(base) };
  return utf8Stream([answerColumn, reasonColumn(count, reasons)]);
}

/** The `reason` column: mostly no reasons, an all-null column of zeroed buffers. */
function reasonColumn(count: number, reasons: readonly ItemProblem[]): Utf8Column {
  if (reasons.length === 0) return { name: REASON_COLUMN, length: count, nullCount: count, validity: new Uint8Array(Math.ceil(count / 8)), offsets: new Int32Array(count + 1), data: new Uint8Array(0) };
  const texts = new Array<Nullable<string>>(count).fill(null);
  for (const { index, reason } of reasons) texts[index] = reason;
  return utf8Column(REASON_COLUMN, texts);
}

/**
 * An Arrow answer: `column` holds the answers in input order, `reason` says why a row is null where the service
 * withheld or could not answer it (null elsewhere, and for null inputs).
 */
export function arrowAnswer(column: string, answers: readonly Nullable<string>[], reasons: readonly ItemProblem[]): Buffer {
  return utf8Stream([utf8Column(column, answers), reasonColumn(answers.length, reasons)]);
}
