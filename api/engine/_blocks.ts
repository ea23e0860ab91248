/**
 * Internal block helpers for the batched AES-SIV engine: one long-lived AES-ECB
 * encryptor per key (OpenSSL, AES-NI where the CPU has it), GF(2^128) doubling,
 * and the packed byte-string layout every batch uses.
 *
 * ECB here is never used as a mode of encryption: it is the raw block function
 * applied to many independent 16-byte inputs in one call (CMAC chaining values and
 * CTR counter blocks), which is where the speed of the batch path comes from.
 */
import { createCipheriv, type Cipher } from 'node:crypto';

export const BLOCK = 16;

/** AES block function over many blocks at once. Encrypt direction only. */
export class AesBlockFunction {
  private readonly cipher: Cipher;

  constructor(key: Uint8Array) {
    // ECB holds no state between blocks, so one cipher object serves every call as long as
    // inputs are whole blocks and final() is never called.
    this.cipher = createCipheriv(`aes-${key.length * 8}-ecb`, key, null);
    this.cipher.setAutoPadding(false);
  }

  /** Encrypts `blocks.length / 16` independent blocks; the input length must be a multiple of 16. */
  encryptBlocks(blocks: Uint8Array): Buffer {
    return this.cipher.update(blocks);
  }
}

/** dbl() of RFC 5297 section 2.3: multiplication by x in GF(2^128), big-endian. */
export function dbl(block: Uint8Array): Uint8Array {
  const out = new Uint8Array(BLOCK);
  dblInto(out, block, 0);
  return out;
}

/** dbl() of the block at `source[sourceOffset ..]`, written to `out[0 .. 16)` (no allocation, for per-value states). */
export function dblInto(out: Uint8Array, source: Uint8Array, sourceOffset: number): void {
  let carry = 0;
  for (let i = BLOCK - 1; i >= 0; i--) {
    const b = source[sourceOffset + i]!;
    out[i] = ((b << 1) | carry) & 0xff;
    carry = b >>> 7;
  }
  if (carry) out[BLOCK - 1]! ^= 0x87;
}

export function xorInto(target: Uint8Array, targetOffset: number, source: Uint8Array, sourceOffset: number, length: number): void {
  for (let i = 0; i < length; i++) target[targetOffset + i]! ^= source[sourceOffset + i]!;
}

/**
 * Many byte strings in one buffer: string i is `data[offsets[i] .. offsets[i + 1])`.
 * Batches stay in this shape end to end so no step allocates per value.
 */
export interface PackedBytes {
  readonly data: Uint8Array;
  readonly offsets: Int32Array;
}

export function packedCount(packed: PackedBytes): number {
  return packed.offsets.length - 1;
}

export function packedItem(packed: PackedBytes, index: number): Uint8Array {
  return packed.data.subarray(packed.offsets[index], packed.offsets[index + 1]);
}

export function packByteArrays(items: readonly Uint8Array[]): PackedBytes {
  const offsets = new Int32Array(items.length + 1);
  let total = 0;
  for (let i = 0; i < items.length; i++) {
    offsets[i] = total;
    total += items[i]!.length;
  }
  offsets[items.length] = total;
  const data = new Uint8Array(total);
  for (let i = 0; i < items.length; i++) data.set(items[i]!, offsets[i]);
  return { data, offsets };
}

/**
 * Splits every item (each at least `headLength` bytes) into its first `headLength` bytes, all in one buffer, and the
 * rest, as a packed batch: e.g. randomized pseudonyms' nonces and their V || C.
 */
export function splitHeads(packed: PackedBytes, headLength: number): { heads: Uint8Array; tails: PackedBytes } {
  const { data, offsets } = packed;
  const count = packedCount(packed);
  const heads = new Uint8Array(count * headLength);
  const tailOffsets = new Int32Array(count + 1);
  const tails = new Uint8Array(offsets[count]! - offsets[0]! - count * headLength);
  let at = 0;
  for (let i = 0; i < count; i++) {
    const start = offsets[i]!;
    const end = offsets[i + 1]!;
    for (let b = 0; b < headLength; b++) heads[i * headLength + b] = data[start + b]!;
    for (let p = start + headLength; p < end; p++) tails[at++] = data[p]!;
    tailOffsets[i + 1] = at;
  }
  return { heads, tails: { data: tails, offsets: tailOffsets } };
}
