/**
 * Keyed hash (HMAC-SHA256, RFC 2104 / FIPS 198-1) over whole batches of values of one context, on OpenSSL.
 *
 * The platform hashes `context || 0x00 || value` under one key per version. Each value is one `createHmac`
 * (node:crypto, OpenSSL): the house rule is that crypto primitives come from OpenSSL or @noble/ciphers, and
 * SHA-256 is a primitive. A SHA-256 written here in JavaScript with the ipad/opad states computed once per
 * context ran 3.6x faster (1.18 M values per CPU-second against 0.33 M) and was removed for that rule:
 * node:crypto has no batch HMAC and no way to start from a saved state but `Hash.copy()`, which measured
 * slower than an HMAC object per value. BENCHMARKS.md keeps both figures.
 */
import { createHmac } from 'node:crypto';
import { packedCount, type PackedBytes } from './_blocks.ts';

export const DIGEST_BYTES = 32;

/** HMAC-SHA256 under one key with a fixed message prefix (the context), for many values. */
export class KeyedHash {
  private readonly key: Buffer;
  private readonly prefix: Buffer;

  /**
   * `key` is kept by reference, not copied: when the keyring zeroes a destroyed version's key, every instance made
   * from it (an evicted one too, which nobody would destroy) sees the zeroed bytes.
   */
  constructor(key: Uint8Array, prefix: Uint8Array = new Uint8Array(0)) {
    this.key = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
    this.prefix = Buffer.from(prefix);
  }

  /** HMAC of prefix || value_i for every value: 32 bytes per value, in input order. */
  digestBatch(values: PackedBytes): Buffer {
    const count = packedCount(values);
    const out = Buffer.allocUnsafe(count * DIGEST_BYTES);
    const { data, offsets } = values;
    for (let i = 0; i < count; i++) {
      const digest = createHmac('sha256', this.key).update(this.prefix).update(data.subarray(offsets[i], offsets[i + 1])).digest();
      digest.copy(out, i * DIGEST_BYTES);
    }
    return out;
  }

  /** Zeroes the key (shared with the keyring) and the prefix: a destroyed key version. */
  destroy(): void {
    this.key.fill(0);
    this.prefix.fill(0);
  }
}
