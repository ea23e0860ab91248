/**
 * Arrow IPC stream of one record batch of Utf8 columns, written straight from the columns' buffers: the answer of
 * the packed (Arrow in, Arrow out) routes. apache-arrow's writer builds a Table, Vectors and a chunk list per answer
 * and then joins the chunks into one buffer; on the packed pseudonymize path that cost more CPU than the encryption
 * (about 117 ns per value under load, the native AES-SIV batch about 80-150). Here the stream is one allocation:
 * the schema message (made once per column list by apache-arrow itself and kept), the record batch's metadata
 * (a FlatBuffer of a few dozen bytes, built with `flatbuffers`, the library apache-arrow uses), the body (each
 * buffer at an 8-byte boundary, zero padding), and the end-of-stream marker. Format:
 * https://arrow.apache.org/docs/format/Columnar.html#serialization-and-interprocess-communication-ipc
 * test/api/arrowStream.test.ts reads what this writes with apache-arrow and pyarrow, and compares it with
 * apache-arrow's own writer.
 */
import { Builder } from 'flatbuffers';
import { makeData, makeVector, Table, tableToIPC, Utf8 } from 'apache-arrow';
import { PlatformError } from '../errors.ts';

/** One Utf8 column as its buffers: item i is `data[offsets[i] .. offsets[i + 1])`, offsets starting at 0. */
export interface Utf8Column {
  readonly name: string;
  readonly length: number;
  readonly nullCount: number;
  /** Bit i set when item i is present; null when no item is null. */
  readonly validity: Uint8Array | null;
  readonly offsets: Int32Array;
  readonly data: Uint8Array;
}

const CONTINUATION = 0xffffffff;
/** MetadataVersion.V5 and MessageHeader.RecordBatch of Message.fbs. */
const METADATA_V5 = 4;
const HEADER_RECORD_BATCH = 3;

const schemaMessages = new Map<string, Buffer>();

/** The schema message (continuation, length, FlatBuffer) of nullable Utf8 fields with these names, as apache-arrow writes it. */
function schemaMessage(names: readonly string[]): Buffer {
  const key = JSON.stringify(names);
  let message = schemaMessages.get(key);
  if (!message) {
    const empty = () => makeVector(makeData({ type: new Utf8(), length: 0, nullCount: 0, valueOffsets: new Int32Array(1), data: new Uint8Array(0) }));
    const stream = tableToIPC(new Table(Object.fromEntries(names.map((name) => [name, empty()]))), 'stream');
    const view = new DataView(stream.buffer, stream.byteOffset, stream.byteLength);
    if (view.getUint32(0, true) !== CONTINUATION) throw new PlatformError('internal', 'apache-arrow wrote a stream without the continuation marker');
    message = Buffer.from(stream.subarray(0, 8 + view.getInt32(4, true)));
    schemaMessages.set(key, message);
  }
  return message;
}

const pad8 = (n: number): number => (n + 7) & ~7;

/** The stream of one record batch holding `columns` (the same length each). */
export function utf8Stream(columns: readonly Utf8Column[]): Buffer {
  const length = columns[0]?.length ?? 0;
  // The body: per column its validity bitmap (none when nothing is null), offsets and data, each 8-byte aligned.
  const buffers: { offset: number; length: number; bytes: Uint8Array }[] = [];
  let bodyLength = 0;
  for (const column of columns) {
    // The service's own invariants (answers are built here, never from caller input): a 500 if ever broken.
    if (column.length !== length) throw new PlatformError('internal', 'the columns of a record batch have one length');
    if (column.offsets.length < length + 1) throw new PlatformError('internal', 'a column needs length + 1 offsets');
    const validity = column.nullCount > 0 && column.validity ? column.validity.subarray(0, Math.ceil(length / 8)) : new Uint8Array(0);
    const offsets = new Uint8Array(column.offsets.buffer, column.offsets.byteOffset, (length + 1) * 4);
    const data = column.data.subarray(0, column.offsets[length]);
    for (const bytes of [validity, offsets, data]) {
      buffers.push({ offset: bodyLength, length: bytes.length, bytes });
      bodyLength += pad8(bytes.length);
    }
  }
  const metadata = recordBatchMetadata(length, columns, buffers, bodyLength);
  const schema = schemaMessage(columns.map((column) => column.name));
  const metadataLength = pad8(metadata.length);
  const out = Buffer.alloc(schema.length + 8 + metadataLength + bodyLength + 8);
  let at = schema.copy(out, 0);
  at = out.writeUInt32LE(CONTINUATION, at);
  at = out.writeInt32LE(metadataLength, at);
  out.set(metadata, at);
  at += metadataLength;
  for (const buffer of buffers) out.set(buffer.bytes, at + buffer.offset);
  at += bodyLength;
  // End of stream: the continuation marker and a zero length (Buffer.alloc zeroed it, and every padding byte).
  out.writeUInt32LE(CONTINUATION, at);
  return out;
}

/** Message { version V5, header RecordBatch { length, nodes, buffers }, bodyLength } as a FlatBuffer. */
function recordBatchMetadata(length: number, columns: readonly Utf8Column[], buffers: readonly { offset: number; length: number }[], bodyLength: number): Uint8Array {
  const builder = new Builder(128 + 16 * (columns.length + buffers.length));
  // Vectors of structs are written back to front; a struct's fields too (FieldNode: length, null_count; Buffer: offset, length).
  builder.startVector(16, buffers.length, 8);
  for (let i = buffers.length - 1; i >= 0; i--) {
    builder.prep(8, 16);
    builder.writeInt64(BigInt(buffers[i]!.length));
    builder.writeInt64(BigInt(buffers[i]!.offset));
  }
  const bufferVector = builder.endVector();
  builder.startVector(16, columns.length, 8);
  for (let i = columns.length - 1; i >= 0; i--) {
    builder.prep(8, 16);
    builder.writeInt64(BigInt(columns[i]!.nullCount));
    builder.writeInt64(BigInt(length));
  }
  const nodeVector = builder.endVector();
  builder.startObject(3);
  builder.addFieldInt64(0, BigInt(length), BigInt(0));
  builder.addFieldOffset(1, nodeVector, 0);
  builder.addFieldOffset(2, bufferVector, 0);
  const recordBatch = builder.endObject();
  builder.startObject(4);
  builder.addFieldInt16(0, METADATA_V5, 0);
  builder.addFieldInt8(1, HEADER_RECORD_BATCH, 0);
  builder.addFieldOffset(2, recordBatch, 0);
  builder.addFieldInt64(3, BigInt(bodyLength), BigInt(0));
  builder.finish(builder.endObject());
  return builder.asUint8Array();
}
