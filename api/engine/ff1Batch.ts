/**
 * FF1 (NIST SP 800-38G Rev. 1 section 5.1, Algorithms 7 and 8) for whole batches of numeral strings.
 *
 * Why batched: per value, FF1 is ten rounds of a PRF (AES-CBC-MAC over P || Q) and numeral-string arithmetic.
 * With one AES call per block and BigInt arithmetic per round (`@noble/ciphers`), a 16-digit value costs
 * about 50 µs. Here every round of a whole batch is one AES-ECB call on OpenSSL over one block per value
 * (as siv.ts does for CMAC), and numbers stay plain JavaScript numbers where that is exact:
 *
 * - P (the first PRF block) and Q's leading part (tweak, zero padding) are the same for every value of one
 *   length under one key and tweak, so the CBC-MAC state after them (Y0) is computed once per length. Only
 *   Q's last bytes, [i] || NUM_radix(B) as b bytes, differ per value and round.
 * - Feistel halves are kept as integers NUM_radix(A), NUM_radix(B) (STR and NUM are bijections between
 *   numeral strings of length m and [0, radix^m)). When radix^v <= 2^44 (16 digits: 10^8) they are doubles,
 *   exact below 2^53: y = NUM(S) mod radix^m is reduced as it is read, never exceeding 2^52. Longer domains
 *   fall back to BigInt arithmetic, with the same batched AES calls.
 *
 * The double arithmetic has a twin in C, the addon native/ff1.c (api/engine/_native.ts loads it after a
 * known-answer check against `runNumbers`): the same rounds, one AES call per round of a chunk, with the per-value
 * work of each round in C, where it cost about 60 ns per value and round in JavaScript. Where the addon is not
 * built or not accepted (the arm64 Lambda), `runNumbers` serves.
 *
 * `@noble/ciphers` FF1 is the reference: test/engine/ff1Batch.test.ts and `npm run verify:ff1` cross-check
 * this file bit for bit (both implementations), and `npm run conformance` runs the Wycheproof and NIST FF1 vectors
 * through it.
 */
import { AesBlockFunction } from './_blocks.ts';
import { loadAddon } from './_native.ts';
import { CryptoInputError } from '../errors.ts';

/** AES block bytes. A module constant, not the import: a transpiled import is a property read in the hot loops. */
const BLOCK = 16;
const ROUNDS = 10;
/** Largest radix^v kept in doubles: every intermediate of the reduction stays below 2^52. */
const NUMBER_DOMAIN_LIMIT = 2 ** 44;
/** Up to this radix^v, y is built 16 bits at a time (y < 2^36 before each step); above it, 8 bits at a time (y < 2^44). */
const WORD_CHUNK_LIMIT = 2 ** 36;
const TWO_32 = 4294967296;

/** native/ff1.c: the double-arithmetic domain's rounds for `indexes`' values, written into `out`. */
interface Ff1Addon {
  numbers(key: Uint8Array, params: Int32Array, base: Uint8Array, digits: Uint16Array, offsets: Int32Array, indexes: Int32Array, out: Uint16Array): void;
}

/** Which implementation does the rounds of domains up to 2^44 (longer ones are BigInt JavaScript either way). */
export type Ff1Implementation = 'openssl-batch-native' | 'javascript';

/** Many numeral strings in one array: string i is `digits[offsets[i] .. offsets[i + 1])`. */
export interface PackedNumerals {
  readonly digits: Uint16Array;
  readonly offsets: Int32Array;
}

/** What is constant for every value of one length n under this key and tweak. */
interface LengthPlan {
  readonly u: number;
  readonly v: number;
  /** Bytes of NUM_radix(B) in Q. */
  readonly b: number;
  /** Bytes of S used for y. */
  readonly d: number;
  /** Blocks at the end of P || Q that hold per-value bytes. */
  readonly variableBlocks: number;
  /** Those blocks with the per-value bytes zeroed and Y0 (the CBC-MAC state before them) XORed into the first. */
  readonly base: Uint8Array;
  /** radix^u and radix^v as numbers (number arithmetic) or undefined (BigInt arithmetic). */
  readonly powU: number | undefined;
  readonly powV: number | undefined;
  readonly bigPowU: bigint;
  readonly bigPowV: bigint;
}

export class Ff1Batch {
  readonly radix: number;
  private readonly aes: AesBlockFunction;
  /** A copy of the key for the addon (it builds its own OpenSSL context per call); zeroed by destroy(). */
  private readonly key: Uint8Array;
  private readonly tweak: Uint8Array;
  private readonly plans = new Map<number, LengthPlan>();
  private destroyed = false;

  /** Which implementation serves this process. */
  static implementation(): Ff1Implementation {
    return Ff1Batch.addon() ? 'openssl-batch-native' : 'javascript';
  }

  /** The addon, or null where none is usable (api/engine/_native.ts finds and loads it, once). */
  private static addon(): Ff1Addon | null {
    return loadAddon<Ff1Addon>('ff1.node', (candidate) => Ff1Batch.answersKnownValues(candidate)) ?? null;
  }

  /**
   * The addon against `runNumbers` for each key size, both directions, on lengths of both d = 8 and d = 12, the
   * domain's edge (16^11 = 2^44) and the radixes the alphabets use: an addon that disagrees (built against another
   * OpenSSL's headers) is not used.
   */
  private static answersKnownValues(candidate: Ff1Addon): boolean {
    for (const keyLength of [16, 24, 32]) {
      const key = new Uint8Array(keyLength).map((_, i) => i * 11 + keyLength);
      for (const [radix, length] of [[10, 16], [10, 2], [10, 9], [36, 13], [62, 14], [16, 22], [65535, 4]] as const) {
        const cipher = new Ff1Batch(radix, key, new Uint8Array([7, 0, 255]));
        const digits = Uint16Array.from({ length: 3 * length }, (_, i) => (i * 7919 + radix) % radix);
        const input = { digits, offsets: Int32Array.from([0, length, 2 * length, 3 * length]) };
        for (const decrypt of [false, true]) {
          const expected = cipher.run(input, decrypt, null);
          const got = cipher.run(input, decrypt, candidate);
          if (got.some((digit, i) => digit !== expected[i])) return false;
        }
      }
    }
    return true;
  }

  constructor(radix: number, key: Uint8Array, tweak: Uint8Array) {
    if (key.length !== 16 && key.length !== 24 && key.length !== 32) throw new CryptoInputError('FF1 key must be 16, 24 or 32 bytes');
    // [radix]^3 in P is written as 0x00 || uint16, as noble does.
    if (!Number.isInteger(radix) || radix < 2 || radix > 65535) throw new CryptoInputError('FF1 radix must be 2..65535');
    this.radix = radix;
    this.aes = new AesBlockFunction(key);
    this.key = Uint8Array.from(key);
    this.tweak = Uint8Array.from(tweak);
  }

  /**
   * Encrypts every numeral string (each of length >= 2, digits < radix: checked by callers). Output offsets are the
   * input's. `implementation` picks one for the tests that compare them; by default the addon when it is loaded.
   */
  encrypt(input: PackedNumerals, implementation?: Ff1Implementation): Uint16Array {
    return this.run(input, false, this.rounds(implementation));
  }

  decrypt(input: PackedNumerals, implementation?: Ff1Implementation): Uint16Array {
    return this.run(input, true, this.rounds(implementation));
  }

  /**
   * Zeroes what this object holds that derives from the key (the per-length PRF states, the addon's key copy) and
   * refuses later calls. OpenSSL's copy goes with the cipher.
   */
  destroy(): void {
    for (const plan of this.plans.values()) plan.base.fill(0);
    this.plans.clear();
    this.key.fill(0);
    this.destroyed = true;
  }

  private rounds(implementation: Ff1Implementation | undefined): Ff1Addon | null {
    if (this.destroyed) throw new Error('this FF1 cipher was destroyed');
    if (implementation === 'javascript') return null;
    const native = Ff1Batch.addon();
    if (implementation === 'openssl-batch-native' && !native) throw new Error('the FF1 addon (dist/native/ff1.node) is not loaded');
    return native;
  }

  /** `native`: the addon for domains up to 2^44, or null for runNumbers. */
  private run(input: PackedNumerals, decrypt: boolean, native: Ff1Addon | null): Uint16Array {
    const { digits, offsets } = input;
    const count = offsets.length - 1;
    const out = new Uint16Array(digits.length);
    // Values of one length share a plan: group them (most batches are one length).
    const byLength = new Map<number, number[]>();
    for (let i = 0; i < count; i++) {
      const n = offsets[i + 1]! - offsets[i]!;
      if (n < 2) throw new CryptoInputError('FF1 input must have at least 2 characters');
      let group = byLength.get(n);
      if (!group) byLength.set(n, (group = []));
      group.push(i);
    }
    for (const [n, indexes] of byLength) {
      const plan = this.plan(n);
      if (plan.powU === undefined || plan.powV === undefined) this.runBigInts(plan, indexes, input, out, decrypt);
      else if (native) native.numbers(this.key, Int32Array.of(this.radix, plan.u, plan.v, decrypt ? 1 : 0), plan.base, digits, offsets, Int32Array.from(indexes), out);
      else this.runNumbers(plan, plan.powU, plan.powV, indexes, input, out, decrypt);
    }
    return out;
  }

  private plan(n: number): LengthPlan {
    let plan = this.plans.get(n);
    if (plan) return plan;
    const radix = this.radix;
    const u = Math.floor(n / 2);
    const v = n - u;
    const bigPowU = BigInt(radix) ** BigInt(u);
    const bigPowV = BigInt(radix) ** BigInt(v);
    // b = ceil(ceil(v * log2(radix)) / 8): the bytes of radix^v - 1, computed exactly.
    const b = Math.ceil((bigPowV - 1n).toString(2).length / 8);
    const d = 4 * Math.ceil(b / 4) + 4;
    const t = this.tweak.length;
    const padding = (((-t - b - 1) % BLOCK) + BLOCK) % BLOCK;
    // P = [1]1 || [2]1 || [1]1 || [radix]3 || [10]1 || [u mod 256]1 || [n]4 || [t]4; Q = T || 0^padding || [i]1 || [NUM(B)]b.
    const pq = new Uint8Array(BLOCK + t + padding + 1 + b);
    pq.set([1, 2, 1, 0, radix >>> 8, radix & 0xff, 10, u & 0xff, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff, t >>> 24, (t >>> 16) & 0xff, (t >>> 8) & 0xff, t & 0xff]);
    pq.set(this.tweak, BLOCK);
    const variableBlocks = Math.ceil((1 + b) / BLOCK);
    const constantBlocks = pq.length / BLOCK - variableBlocks;
    const y0 = new Uint8Array(BLOCK);
    for (let j = 0; j < constantBlocks; j++) {
      for (let k = 0; k < BLOCK; k++) y0[k]! ^= pq[j * BLOCK + k]!;
      y0.set(this.aes.encryptBlocks(y0));
    }
    const base = pq.slice(constantBlocks * BLOCK);
    for (let k = 0; k < BLOCK; k++) base[k]! ^= y0[k]!;
    const numberArithmetic = bigPowV <= BigInt(NUMBER_DOMAIN_LIMIT);
    plan = {
      u,
      v,
      b,
      d,
      variableBlocks,
      base,
      powU: numberArithmetic ? Number(bigPowU) : undefined,
      powV: numberArithmetic ? Number(bigPowV) : undefined,
      bigPowU,
      bigPowV,
    };
    if (this.plans.size >= 1024) this.plans.clear();
    this.plans.set(n, plan);
    return plan;
  }

  /**
   * Number arithmetic: radix^v <= 2^44, so b <= 6, [i] || NUM(B) fits the last block (one variable block) and
   * d <= 12 bytes of R are used (S = R). Each round is one AES call over one block per value.
   */
  private runNumbers(plan: LengthPlan, powU: number, powV: number, indexes: number[], input: PackedNumerals, out: Uint16Array, decrypt: boolean): void {
    const { u, b, d, base } = plan;
    const radix = this.radix;
    const count = indexes.length;
    const { digits, offsets } = input;
    // left/right: NUM(A), NUM(B) in the spec's naming; a and b of the current round.
    const left = new Float64Array(count);
    const right = new Float64Array(count);
    for (let k = 0; k < count; k++) {
      const start = offsets[indexes[k]!]!;
      let a = 0;
      for (let j = 0; j < u; j++) a = a * radix + digits[start + j]!;
      let r = 0;
      for (let j = start + u, end = start + u + plan.v; j < end; j++) r = r * radix + digits[j]!;
      left[k] = a;
      right[k] = r;
    }
    const blocks = new Uint8Array(count * BLOCK);
    for (let k = 0; k < count; k++) blocks.set(base, k * BLOCK);
    const roundAt = BLOCK - b - 1;
    const wordChunks = powV <= WORD_CHUNK_LIMIT;
    const chunks = d / 2;
    const weightsU = chunkWeights(powU, chunks);
    const weightsV = chunkWeights(powV, chunks);
    // Encrypt: Q carries NUM(B) and c = (NUM(A) + y) mod radix^m; A = B, B = C.
    // Decrypt: Q carries NUM(A) and c = (NUM(B) - y) mod radix^m; B = A, A = C.
    // Either way the next round's Q carries c, so it is written as soon as c is known.
    const firstQ = decrypt ? left : right;
    for (let k = 0; k < count; k++) writeQ(blocks, k * BLOCK, firstQ[k]!, base, roundAt, decrypt ? ROUNDS - 1 : 0);
    for (let step = 0; step < ROUNDS; step++) {
      const i = decrypt ? ROUNDS - 1 - step : step;
      const next = decrypt ? i - 1 : i + 1;
      const last = step === ROUNDS - 1;
      const modulus = i % 2 === 0 ? powU : powV;
      const inverse = 1 / modulus;
      const weights = i % 2 === 0 ? weightsU : weightsV;
      const r = this.aes.encryptBlocks(blocks);
      for (let k = 0, p = 0; k < count; k++, p += BLOCK) {
        // y = NUM(S[0..d)) mod radix^m (d is 8 or 12). With weights, the sum of each 16-bit chunk times its place
        // value mod radix^m, below 2^52 and reduced once; otherwise Horner over chunks, reduced before
        // y * chunkRange + chunk could reach 2^52.
        let y = 0;
        if (weights) {
          for (let j = 0, q = p; j < chunks; j++, q += 2) y += weights[j]! * ((r[q]! << 8) | r[q + 1]!);
        } else if (wordChunks) {
          for (let j = p, end = p + d; j < end; j += 2) {
            y = y * 65536 + ((r[j]! << 8) | r[j + 1]!);
            if (y >= WORD_CHUNK_LIMIT) y = reduce(y, modulus, inverse);
          }
        } else {
          for (let j = p, end = p + d; j < end; j++) {
            y = y * 256 + r[j]!;
            if (y >= NUMBER_DOMAIN_LIMIT) y = reduce(y, modulus, inverse);
          }
        }
        if (y >= modulus) y = reduce(y, modulus, inverse);
        let c: number;
        if (decrypt) {
          c = right[k]! - y;
          if (c < 0) c += modulus;
          right[k] = left[k]!;
          left[k] = c;
        } else {
          c = left[k]! + y;
          if (c >= modulus) c -= modulus;
          left[k] = right[k]!;
          right[k] = c;
        }
        if (!last) writeQ(blocks, p, c, base, roundAt, next);
      }
    }
    for (let k = 0; k < count; k++) {
      const start = offsets[indexes[k]!]!;
      let a = left[k]!;
      for (let j = start + u - 1; j >= start; j--) {
        const digit = a % radix;
        out[j] = digit;
        a = (a - digit) / radix;
      }
      let r = right[k]!;
      for (let j = start + u + plan.v - 1; j >= start + u; j--) {
        const digit = r % radix;
        out[j] = digit;
        r = (r - digit) / radix;
      }
    }
  }

  /** BigInt arithmetic for domains beyond 2^44, with the general PRF (several variable blocks, d > 16). */
  private runBigInts(plan: LengthPlan, indexes: number[], input: PackedNumerals, out: Uint16Array, decrypt: boolean): void {
    const { u, v, b, d, base, variableBlocks } = plan;
    const radix = BigInt(this.radix);
    const count = indexes.length;
    const { digits, offsets } = input;
    const left: bigint[] = new Array<bigint>(count);
    const right: bigint[] = new Array<bigint>(count);
    for (let k = 0; k < count; k++) {
      const start = offsets[indexes[k]!]!;
      let a = 0n;
      for (let j = 0; j < u; j++) a = a * radix + BigInt(digits[start + j]!);
      let r = 0n;
      for (let j = start + u; j < start + u + v; j++) r = r * radix + BigInt(digits[j]!);
      left[k] = a;
      right[k] = r;
    }
    const planeBytes = count * BLOCK;
    // Plane j holds block j of the variable part for every value, so each CBC step is one AES call.
    const planes = new Uint8Array(variableBlocks * planeBytes);
    const tail = variableBlocks * BLOCK;
    const sBlocks = Math.ceil(d / BLOCK);
    const s = new Uint8Array(count * sBlocks * BLOCK);
    for (let step = 0; step < ROUNDS; step++) {
      const i = decrypt ? ROUNDS - 1 - step : step;
      const modulus = i % 2 === 0 ? plan.bigPowU : plan.bigPowV;
      const inQ = decrypt ? left : right;
      for (let k = 0; k < count; k++) {
        let x = inQ[k]!;
        // Byte q of the variable tail sits in plane floor(q / 16) at this value's block.
        for (let q = tail - 1; q >= 0; q--) {
          let byte = base[q]!;
          if (q >= tail - b) {
            byte ^= Number(x & 0xffn);
            x >>= 8n;
          } else if (q === tail - b - 1) byte ^= i;
          planes[Math.floor(q / BLOCK) * planeBytes + k * BLOCK + (q % BLOCK)] = byte;
        }
      }
      let state = this.aes.encryptBlocks(planes.subarray(0, planeBytes));
      for (let j = 1; j < variableBlocks; j++) {
        const plane = planes.subarray(j * planeBytes, (j + 1) * planeBytes);
        for (let p = 0; p < planeBytes; p++) plane[p]! ^= state[p]!;
        state = this.aes.encryptBlocks(plane);
      }
      // S = R || CIPH(R xor [1]16) || CIPH(R xor [2]16) ...
      for (let k = 0; k < count; k++) s.set(state.subarray(k * BLOCK, (k + 1) * BLOCK), k * sBlocks * BLOCK);
      for (let j = 1; j < sBlocks; j++) {
        const counters = new Uint8Array(state);
        for (let k = 0; k < count; k++) {
          const p = k * BLOCK;
          counters[p + 15]! ^= j & 0xff;
          counters[p + 14]! ^= (j >>> 8) & 0xff;
          counters[p + 13]! ^= (j >>> 16) & 0xff;
          counters[p + 12]! ^= j >>> 24;
        }
        const extra = this.aes.encryptBlocks(counters);
        for (let k = 0; k < count; k++) s.set(extra.subarray(k * BLOCK, (k + 1) * BLOCK), (k * sBlocks + j) * BLOCK);
      }
      for (let k = 0; k < count; k++) {
        let y = 0n;
        const at = k * sBlocks * BLOCK;
        for (let j = 0; j < d; j++) y = (y << 8n) | BigInt(s[at + j]!);
        y %= modulus;
        if (decrypt) {
          let c = right[k]! - y;
          if (c < 0n) c += modulus;
          right[k] = left[k]!;
          left[k] = c;
        } else {
          let c = left[k]! + y;
          if (c >= modulus) c -= modulus;
          left[k] = right[k]!;
          right[k] = c;
        }
      }
    }
    for (let k = 0; k < count; k++) {
      const start = offsets[indexes[k]!]!;
      let a = left[k]!;
      for (let j = start + u - 1; j >= start; j--) {
        out[j] = Number(a % radix);
        a /= radix;
      }
      let r = right[k]!;
      for (let j = start + u + v - 1; j >= start + u; j--) {
        out[j] = Number(r % radix);
        r /= radix;
      }
    }
  }
}

/**
 * (2^(16 * (chunks - 1 - j)) mod m) for each 16-bit chunk j of a big-endian number, when the weighted sum of
 * any chunks stays below 2^52 (exact in doubles); undefined when it would not.
 */
function chunkWeights(m: number, chunks: number): Float64Array | undefined {
  if (chunks * 65535 * (m - 1) >= 2 ** 52) return undefined;
  const weights = new Float64Array(chunks);
  let weight = 1 % m;
  for (let j = chunks - 1; j >= 0; j--) {
    weights[j] = weight;
    weight = (weight * 65536) % m; // m < 2^34 here, so the product is below 2^50: exact
  }
  return weights;
}

/**
 * Writes Q's per-value bytes, [round]1 || [x]b, into the value's last PRF block at `p` (base holds the constant
 * bytes with Y0 folded in). x is an exact integer below 2^44.
 */
function writeQ(blocks: Uint8Array, p: number, x: number, base: Uint8Array, roundAt: number, round: number): void {
  blocks[p + roundAt] = base[roundAt]! ^ round;
  let low = x >>> 0; // x mod 2^32
  if (x < TWO_32) {
    for (let j = BLOCK - 1; j > roundAt; j--, low >>>= 8) blocks[p + j] = base[j]! ^ (low & 0xff);
    return;
  }
  let high = (x - low) / TWO_32;
  for (let j = BLOCK - 1; j > roundAt; j--) {
    blocks[p + j] = base[j]! ^ (low & 0xff);
    low = (low >>> 8) | ((high & 0xff) << 24);
    high = high >>> 8;
  }
}

/**
 * x mod m for integers 0 <= x < 2^52, 1 < m <= 2^44, with inverse = 1 / m: the quotient x * inverse is
 * within one of x / m (x / m < 2^51 and the relative error is below 2^-52), so one correction step makes the
 * remainder exact; q * m <= x + m < 2^53 is exact.
 */
function reduce(x: number, m: number, inverse: number): number {
  let r = x - Math.floor(x * inverse) * m;
  if (r < 0) r += m;
  else if (r >= m) r -= m;
  return r;
}
