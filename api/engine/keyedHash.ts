/**
 * Keyed hash (HMAC-SHA256, RFC 2104 / FIPS 198-1) over whole batches of values of one context, on OpenSSL.
 *
 * The platform hashes `context || 0x00 || value` under one key per version. HMAC's inner state after the key
 * block and the prefix, and its outer state after the key block, are the same for every value of a batch; from
 * them each short value costs two SHA-256 compressions. node:crypto cannot resume a hash from a saved state
 * (`Hash.copy()` per value measured slower than one `createHmac` per value), and the house rule keeps SHA-256 in
 * OpenSSL or @noble/ciphers (a SHA-256 written here in JavaScript reached 1.18 M values per CPU-second and was
 * removed for it). So two implementations, bit-identical:
 *
 * - `openssl-batch`: the addon native/keyed_hash.c (dist/native/keyed_hash.node, built by `npm run build` when a
 *   C compiler is there) computes both states once per batch and copies OpenSSL's SHA256_CTX per value, calling
 *   the SHA256_* functions node itself exports (SHA-NI where the CPU has it). No SHA-256 of our own.
 * - `createHmac-per-value`: one node:crypto HMAC per value (about 0.33 M values per CPU-second here), used when the
 *   addon is not built, does not load (another architecture, a node that does not export OpenSSL) or fails the
 *   known-answer check below. The Lambda functions always use it: they run on arm64 and dist/lambda.zip carries
 *   no addon.
 *
 * BENCHMARKS.md ("FF1 and keyed hash, batched (issue 17)") has the figures.
 */
import { createHmac } from 'node:crypto';
import { CryptoInputError } from '../errors.ts';
import { packByteArrays, packedCount, type PackedBytes } from './_blocks.ts';
import { loadAddon } from './_native.ts';

export const DIGEST_BYTES = 32;

export type KeyedHashImplementation = 'openssl-batch' | 'createHmac-per-value';

/** native/keyed_hash.c: value i is `data[offsets[i] .. offsets[i + 1])`; writes 32 bytes per value into `out`. */
interface KeyedHashAddon {
  hmacSha256Batch(key: Uint8Array, prefix: Uint8Array, data: Uint8Array, offsets: Int32Array, out: Uint8Array): void;
}

/** The addon, or null where none is usable (api/engine/_native.ts finds and loads it, once). */
function addon(): KeyedHashAddon | null {
  return loadAddon<KeyedHashAddon>('keyed_hash.node', answersKnownValues) ?? null;
}

/**
 * The addon against createHmac on a key of the platform's size and one longer than the block, values around the
 * padding boundaries: a node whose OpenSSL does not match the headers the addon was compiled with fails here, once.
 */
function answersKnownValues(candidate: KeyedHashAddon): boolean {
  const values = packByteArrays([0, 1, 55, 56, 64, 119].map((length) => new Uint8Array(length).fill(0x61 + (length % 26))));
  for (const keyLength of [32, 100]) {
    const key = new Uint8Array(keyLength).fill(keyLength);
    const prefix = Buffer.from('known-answer\u0000');
    const out = Buffer.alloc(packedCount(values) * DIGEST_BYTES);
    candidate.hmacSha256Batch(key, prefix, values.data, values.offsets, out);
    if (!perValueDigests(Buffer.from(key), prefix, values).equals(out)) return false;
  }
  return true;
}

function perValueDigests(key: Buffer, prefix: Buffer, values: PackedBytes): Buffer {
  const count = packedCount(values);
  const { data, offsets } = values;
  // The addon's checks, so that both implementations refuse the same batches (subarray would clamp silently).
  for (let i = 0; i < count; i++) {
    if (offsets[i]! < 0 || offsets[i]! > offsets[i + 1]! || offsets[i + 1]! > data.length) throw new TypeError('keyed hash: offsets must be ascending and within data');
  }
  const out = Buffer.allocUnsafe(count * DIGEST_BYTES);
  for (let i = 0; i < count; i++) {
    const digest = createHmac('sha256', key).update(prefix).update(data.subarray(offsets[i], offsets[i + 1])).digest();
    digest.copy(out, i * DIGEST_BYTES);
  }
  return out;
}

/** The implementation a KeyedHash gets by default in this process: the addon when it loads and checks out. */
export function keyedHashImplementation(): KeyedHashImplementation {
  return addon() ? 'openssl-batch' : 'createHmac-per-value';
}

/** HMAC-SHA256 under one key with a fixed message prefix (the context), for many values. */
export class KeyedHash {
  private readonly key: Buffer;
  private readonly prefix: Buffer;
  private readonly native: KeyedHashAddon | null;

  /**
   * `key` is kept by reference, not copied: when the keyring zeroes a destroyed version's key, every instance made
   * from it (an evicted one too, which nobody would destroy) sees the zeroed bytes. Neither implementation keeps
   * state derived from the key between batches. `implementation` is for tests and benchmarks that compare the two;
   * asking for `openssl-batch` where the addon did not load throws.
   */
  constructor(key: Uint8Array, prefix: Uint8Array = new Uint8Array(0), implementation: KeyedHashImplementation = keyedHashImplementation()) {
    this.key = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
    this.prefix = Buffer.from(prefix);
    this.native = implementation === 'openssl-batch' ? addon() : null;
    if (implementation === 'openssl-batch' && !this.native) throw new CryptoInputError('keyed hash: the native addon (dist/native/keyed_hash.node) is not loaded');
  }

  get implementation(): KeyedHashImplementation {
    return this.native ? 'openssl-batch' : 'createHmac-per-value';
  }

  /** HMAC of prefix || value_i for every value: 32 bytes per value, in input order. */
  digestBatch(values: PackedBytes): Buffer {
    if (values.offsets.length < 1) throw new TypeError('keyed hash: offsets must hold at least one entry');
    if (!this.native) return perValueDigests(this.key, this.prefix, values);
    const out = Buffer.allocUnsafe(packedCount(values) * DIGEST_BYTES);
    this.native.hmacSha256Batch(this.key, this.prefix, values.data, values.offsets, out);
    return out;
  }

  /** Zeroes the key (shared with the keyring) and the prefix: a destroyed key version. */
  destroy(): void {
    this.key.fill(0);
    this.prefix.fill(0);
  }
}
