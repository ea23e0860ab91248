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
  let carry = 0;
  for (let i = BLOCK - 1; i >= 0; i--) {
    const b = block[i]!;
    out[i] = ((b << 1) | carry) & 0xff;
    carry = b >>> 7;
  }
  if (carry) out[BLOCK - 1]! ^= 0x87;
  return out;
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
