/** Identifiers in and out of packed byte batches (UTF-8). Pseudonym text is pseudonymFormat.ts. */
import type { PackedBytes } from './_blocks.ts';

/** UTF-8 encodes every value into one buffer. Values must be well-formed Unicode (checked by callers). */
export function packUtf8(values: readonly string[]): PackedBytes & { data: Buffer } {
  let capacity = 0;
  for (const value of values) capacity += value.length * 3;
  const data = Buffer.allocUnsafe(capacity);
  const offsets = new Int32Array(values.length + 1);
  let at = 0;
  for (let i = 0; i < values.length; i++) {
    offsets[i] = at;
    at += data.write(values[i]!, at, 'utf8');
  }
  offsets[values.length] = at;
  return { data, offsets };
}

export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
