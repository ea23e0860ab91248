/**
 * Strings in and out of packed byte batches: UTF-8 for identifiers, strict base64url for
 * pseudonym payloads. Node's own base64url decoder skips characters it does not know, so the
 * decoder here checks the alphabet and the canonical trailing bits first: one pseudonym has
 * exactly one spelling.
 */
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

const BASE64URL_VALUE = new Int8Array(128).fill(-1);
'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.split('').forEach((c, i) => {
  BASE64URL_VALUE[c.charCodeAt(0)] = i;
});

/** True when `text[from..]` is unpadded base64url in its one canonical spelling. */
export function isCanonicalBase64Url(text: string, from: number): boolean {
  const length = text.length - from;
  if (length % 4 === 1) return false;
  let last = 0;
  for (let i = from; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const value = code < 128 ? BASE64URL_VALUE[code]! : -1;
    if (value < 0) return false;
    last = value;
  }
  // The unused low bits of the final character must be zero.
  if (length % 4 === 2) return (last & 0x0f) === 0;
  if (length % 4 === 3) return (last & 0x03) === 0;
  return true;
}

export function base64UrlDecodedLength(encodedLength: number): number {
  return Math.floor((encodedLength * 3) / 4);
}
