/**
 * AES-SIV (RFC 5297, https://www.rfc-editor.org/rfc/rfc5297) for whole batches of values.
 *
 * Construction (section 2.6): the key is split in half, K1 for S2V (a CMAC-based PRF over the
 * associated data and the plaintext) and K2 for CTR mode. The synthetic IV V = S2V(K1, AD..., P)
 * is both the authentication tag and, with two bits cleared, the initial counter; the output
 * is V || (P xor CTR(K2, V)).
 *
 * Why batched: with one cipher object per value, the per-call overhead dominates for short
 * identifiers. Here each CMAC round of every value in the batch, and the whole CTR keystream,
 * is one AES-ECB call on OpenSSL. The associated data (the context) is the same for the whole
 * batch, so its part of S2V (the "header state" D) is computed once and reused.
 *
 * `@noble/ciphers` `aessiv` is the reference: test/engine/siv.test.ts cross-checks this file
 * bit for bit on more than a million random inputs, and the conformance command runs the
 * Wycheproof DaeadTest vectors through it.
 */
import { AesBlockFunction, BLOCK, dbl, dblInto, packedCount, xorInto, type PackedBytes } from './_blocks.ts';
import { CryptoInputError } from '../errors.ts';

/** K1 || K2: two AES-128, AES-192 or AES-256 keys. The platform uses 64 bytes (AES-256). */
export const SIV_KEY_LENGTHS: readonly number[] = [32, 48, 64];

export interface SivDecryptResult {
  /** Plaintexts in input order; an item that failed verification is empty. */
  readonly plaintexts: PackedBytes;
  /** 1 where the item authenticated, 0 where it did not (tampered, truncated, other AD or key). */
  readonly valid: Uint8Array;
}

/** Typed-array words are in the platform's byte order; counters are big-endian (RFC 5297 section 2.5). */
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;
/** Clears bit 7 of a word's first byte in memory: bit 63 of a 128-bit counter lies in byte 8, the first of word 2. */
const CLEAR_TOP_BIT_OF_FIRST_BYTE = LITTLE_ENDIAN ? 0xffffff7f : 0x7fffffff;

/** The 32-bit word whose bytes in memory are `value` big-endian. */
function bigEndianWord(value: number): number {
  return LITTLE_ENDIAN ? ((value & 0xff) << 24) | ((value & 0xff00) << 8) | ((value >>> 8) & 0xff00) | (value >>> 24) : value;
}

export class AesSiv {
  private readonly mac: AesBlockFunction;
  private readonly ctr: AesBlockFunction;
  private readonly subkey1: Uint8Array;
  private readonly subkey2: Uint8Array;
  /** The CMAC subkeys as 32-bit words (XOR works the same on words, in either byte order). */
  private readonly subkey1Words: Uint32Array;
  private readonly subkey2Words: Uint32Array;
  private readonly cmacOfZero: Uint8Array;
  /** K1 ‖ K2, a copy kept for the native batch path (sivText.ts); zeroed by `destroy`. */
  private readonly key: Uint8Array;
  private destroyed = false;

  constructor(key: Uint8Array) {
    if (!SIV_KEY_LENGTHS.includes(key.length)) {
      throw new CryptoInputError('AES-SIV key must be 32, 48 or 64 bytes');
    }
    this.key = Uint8Array.from(key);
    const half = key.length / 2;
    this.mac = new AesBlockFunction(key.subarray(0, half));
    this.ctr = new AesBlockFunction(key.subarray(half));
    // CMAC subkeys (RFC 4493 section 2.3): L = AES(K, 0^128), K1 = dbl(L), K2 = dbl(K1).
    const l = this.mac.encryptBlocks(new Uint8Array(BLOCK));
    this.subkey1 = dbl(l);
    this.subkey2 = dbl(this.subkey1);
    l.fill(0);
    this.subkey1Words = new Uint32Array(Uint8Array.from(this.subkey1).buffer);
    this.subkey2Words = new Uint32Array(Uint8Array.from(this.subkey2).buffer);
    this.cmacOfZero = this.cmac(new Uint8Array(BLOCK));
  }

  /** K1 (S2V) and K2 (CTR) as views of the kept key, for the native batch path (sivText.ts) only. */
  keyHalves(): [Uint8Array, Uint8Array] {
    this.assertUsable();
    const half = this.key.length / 2;
    return [this.key.subarray(0, half), this.key.subarray(half)];
  }

  /**
   * Zeroes the kept key and refuses every later call: a destroyed key version (the OpenSSL cipher objects go with the
   * version's last reference).
   */
  destroy(): void {
    this.destroyed = true;
    this.key.fill(0);
  }

  private assertUsable(): void {
    if (this.destroyed) throw new CryptoInputError('this AES-SIV key was destroyed');
  }

  /** AES-CMAC (RFC 4493) of one message. Used for associated data, not per value. */
  cmac(message: Uint8Array): Uint8Array {
    const blocks = Math.max(1, Math.ceil(message.length / BLOCK));
    const lastComplete = message.length > 0 && message.length % BLOCK === 0;
    const x = new Uint8Array(BLOCK);
    for (let b = 0; b < blocks; b++) {
      const chunk = message.subarray(b * BLOCK, (b + 1) * BLOCK);
      xorInto(x, 0, chunk, 0, chunk.length);
      if (b === blocks - 1) {
        if (lastComplete) xorInto(x, 0, this.subkey1, 0, BLOCK);
        else {
          x[chunk.length]! ^= 0x80;
          xorInto(x, 0, this.subkey2, 0, BLOCK);
        }
      }
      x.set(this.mac.encryptBlocks(x));
    }
    return x;
  }

  /**
   * S2V state after the associated-data components S1..Sk (RFC 5297 section 2.4):
   * D = CMAC(0); for each S: D = dbl(D) xor CMAC(S). Constant per context: compute it once.
   */
  headerState(associatedData: readonly Uint8Array[]): Uint8Array {
    this.assertUsable();
    if (associatedData.length > 126) throw new CryptoInputError('AES-SIV allows at most 126 associated-data components');
    let d = this.cmacOfZero;
    for (const component of associatedData) {
      d = dbl(d);
      xorInto(d, 0, this.cmac(component), 0, BLOCK);
    }
    return d;
  }

  /**
   * Per-value header states for nonce-based use, where a 16-byte nonce is the last associated-data
   * component: D_i = dbl(D) xor CMAC(nonce_i). The CMAC of one complete block is AES(nonce xor K1),
   * so all nonces go through one AES call.
   */
  headerStatesWithNonces(headerState: Uint8Array, nonces: Uint8Array): Uint8Array {
    if (nonces.length % BLOCK !== 0) throw new CryptoInputError('nonces must be 16 bytes each');
    const input = new Uint8Array(nonces.length);
    for (let i = 0; i < nonces.length; i++) input[i] = nonces[i]! ^ this.subkey1[i & 15]!;
    const states = new Uint8Array(this.mac.encryptBlocks(input));
    const doubled = dbl(headerState);
    for (let i = 0; i < states.length; i++) states[i]! ^= doubled[i & 15]!;
    return states;
  }

  /**
   * Encrypts every plaintext; output item i is V_i || C_i.
   * `headerStates` is one 16-byte state shared by the batch, or one per value (16 * n bytes).
   */
  encryptBatch(headerStates: Uint8Array, plaintexts: PackedBytes): PackedBytes {
    this.assertUsable();
    const count = packedCount(plaintexts);
    this.checkHeaderStates(headerStates, count);
    const tags = this.s2v(headerStates, plaintexts);
    const { data: inData, offsets: inOffsets } = plaintexts;
    const base = inOffsets[0]!;
    const outOffsets = new Int32Array(count + 1);
    for (let i = 0; i <= count; i++) outOffsets[i] = inOffsets[i]! - base + BLOCK * i;
    const output = new Uint8Array(outOffsets[count]!);
    const lengths = new Int32Array(count);
    for (let i = 0; i < count; i++) lengths[i] = inOffsets[i + 1]! - inOffsets[i]!;
    const { keystream, blockStarts } = this.keystream(tags, lengths);
    for (let i = 0; i < count; i++) {
      // A byte loop, not output.set(tags.subarray(...)): two objects and a native call per value cost more than 16 bytes.
      const at = outOffsets[i]!;
      const t = i * BLOCK;
      for (let b = 0; b < BLOCK; b++) output[at + b] = tags[t + b]!;
      const src = inOffsets[i]!;
      const dst = at + BLOCK;
      const ks = blockStarts[i]! * BLOCK;
      const length = lengths[i]!;
      for (let b = 0; b < length; b++) output[dst + b] = inData[src + b]! ^ keystream[ks + b]!;
    }
    return { data: output, offsets: outOffsets };
  }

  /**
   * Decrypts and verifies every V || C under the same header states as encryption: CTR of the whole batch is one
   * AES call, S2V over the recovered plaintexts one AES call per CMAC round, as in `encryptBatch`.
   */
  decryptBatch(headerStates: Uint8Array, ciphertexts: PackedBytes): SivDecryptResult {
    this.assertUsable();
    const count = packedCount(ciphertexts);
    this.checkHeaderStates(headerStates, count);
    const { data, offsets } = ciphertexts;
    const valid = new Uint8Array(count);
    // The received tags, block-aligned so that the comparison below reads them as 32-bit words.
    const tags = new Uint8Array(count * BLOCK);
    const lengths = new Int32Array(count);
    const plainOffsets = new Int32Array(count + 1);
    for (let i = 0; i < count; i++) {
      const start = offsets[i]!;
      const length = offsets[i + 1]! - start;
      if (length >= BLOCK) {
        valid[i] = 1;
        const t = i * BLOCK;
        for (let b = 0; b < BLOCK; b++) tags[t + b] = data[start + b]!;
        lengths[i] = length - BLOCK;
      }
      plainOffsets[i + 1] = plainOffsets[i]! + lengths[i]!;
    }
    const plain = new Uint8Array(plainOffsets[count]!);
    const { keystream, blockStarts } = this.keystream(tags, lengths);
    for (let i = 0; i < count; i++) {
      const length = lengths[i]!;
      const src = offsets[i]! + BLOCK;
      const dst = plainOffsets[i]!;
      const ks = blockStarts[i]! * BLOCK;
      for (let b = 0; b < length; b++) plain[dst + b] = data[src + b]! ^ keystream[ks + b]!;
    }
    const expected = this.s2v(headerStates, { data: plain, offsets: plainOffsets });
    // Constant time per tag, as noble's equalBytes: every word of both tags is read and the differences ORed, with
    // no early exit; whether an item authenticated is the only thing that decides a branch.
    const expected32 = new Uint32Array(expected.buffer, expected.byteOffset, count * 4);
    const tags32 = new Uint32Array(tags.buffer, 0, count * 4);
    let failed = 0;
    for (let i = 0; i < count; i++) {
      const w = i * 4;
      const difference =
        (expected32[w]! ^ tags32[w]!) | (expected32[w + 1]! ^ tags32[w + 1]!) | (expected32[w + 2]! ^ tags32[w + 2]!) | (expected32[w + 3]! ^ tags32[w + 3]!);
      if (difference !== 0 || valid[i] === 0) {
        valid[i] = 0;
        failed++;
        plain.fill(0, plainOffsets[i], plainOffsets[i + 1]);
      }
    }
    if (failed === 0) return { plaintexts: { data: plain, offsets: plainOffsets }, valid };
    // Items that failed carry no bytes, so a caller cannot read unauthenticated plaintext.
    const compactOffsets = new Int32Array(count + 1);
    let write = 0;
    for (let i = 0; i < count; i++) {
      compactOffsets[i] = write;
      if (valid[i]) {
        const start = plainOffsets[i]!;
        const end = plainOffsets[i + 1]!;
        if (write !== start) plain.copyWithin(write, start, end);
        write += end - start;
      }
    }
    compactOffsets[count] = write;
    plain.fill(0, write);
    return { plaintexts: { data: plain.subarray(0, write), offsets: compactOffsets }, valid };
  }

  private checkHeaderStates(headerStates: Uint8Array, count: number): void {
    if (headerStates.length !== BLOCK && headerStates.length !== BLOCK * count) {
      throw new CryptoInputError('header states must be 16 bytes, or 16 bytes per value');
    }
  }

  /**
   * The CTR keystream of every item (RFC 5297 section 2.6: Q = V with bits 63 and 31 cleared, then Q, Q+1, ...)
   * as one AES call; item i's keystream starts at block `blockStarts[i]`. `tags` is 16 bytes per item.
   */
  private keystream(tags: Uint8Array, lengths: Int32Array): { keystream: Uint8Array; blockStarts: Int32Array } {
    const count = lengths.length;
    const blockStarts = new Int32Array(count + 1);
    for (let i = 0; i < count; i++) blockStarts[i + 1] = blockStarts[i]! + ((lengths[i]! + BLOCK - 1) >> 4);
    const counters = new Uint8Array(blockStarts[count]! * BLOCK);
    const counters32 = new Uint32Array(counters.buffer);
    const tags32 = new Uint32Array(tags.buffer, tags.byteOffset, count * 4);
    for (let i = 0; i < count; i++) {
      const blocks = blockStarts[i + 1]! - blockStarts[i]!;
      if (blocks === 0) continue;
      const t = i * BLOCK;
      // Clearing the top bit of the low 32-bit word means the increment below never carries.
      const low = (((tags[t + 12]! & 0x7f) << 24) | (tags[t + 13]! << 16) | (tags[t + 14]! << 8) | tags[t + 15]!) >>> 0;
      const high = tags32[i * 4]!;
      const middle = tags32[i * 4 + 1]!;
      const third = tags32[i * 4 + 2]! & CLEAR_TOP_BIT_OF_FIRST_BYTE;
      let w = blockStarts[i]! * 4;
      for (let j = 0; j < blocks; j++, w += 4) {
        counters32[w] = high;
        counters32[w + 1] = middle;
        counters32[w + 2] = third;
        counters32[w + 3] = bigEndianWord(low + j);
      }
    }
    return { keystream: this.ctr.encryptBlocks(counters), blockStarts };
  }

  /**
   * S2V over the plaintexts of a batch, given the header states; returns V per value (16 * n bytes,
   * input order). T is laid out block-aligned per value with the final-block treatment of both
   * S2V (xorend or dbl+pad) and CMAC (subkey K1 or padding and K2) already applied, so each CMAC
   * round is one XOR of 16 bytes per value and one AES call.
   */
  private s2v(headerStates: Uint8Array, input: PackedBytes): Uint8Array {
    const count = packedCount(input);
    const shared = headerStates.length === BLOCK;
    const { data, offsets } = input;

    // Values still running in CMAC round r must be a prefix: order them by block count, longest first.
    const blockCounts = new Int32Array(count);
    let maxBlocks = 1;
    for (let i = 0; i < count; i++) {
      const blocks = Math.max(1, Math.ceil((offsets[i + 1]! - offsets[i]!) / BLOCK));
      blockCounts[i] = blocks;
      if (blocks > maxBlocks) maxBlocks = blocks;
    }
    const histogram = new Int32Array(maxBlocks + 2);
    for (let i = 0; i < count; i++) histogram[blockCounts[i]!]!++;
    const bucketStart = new Int32Array(maxBlocks + 2);
    for (let b = maxBlocks - 1; b >= 1; b--) bucketStart[b] = bucketStart[b + 1]! + histogram[b + 1]!;
    const order = new Int32Array(count);
    for (let i = 0; i < count; i++) order[bucketStart[blockCounts[i]!]!++] = i;

    const tBlockStart = new Int32Array(count + 1);
    for (let k = 0; k < count; k++) tBlockStart[k + 1] = tBlockStart[k]! + blockCounts[order[k]!]!;
    const t = new Uint8Array(tBlockStart[count]! * BLOCK);
    const t32 = new Uint32Array(t.buffer);
    const subkey1 = this.subkey1Words;
    const subkey2 = this.subkey2Words;

    // T for short plaintexts is dbl(D) xor pad(P), one complete CMAC block: fold K1 in as well.
    const shortMask = new Uint8Array(BLOCK);
    if (shared) {
      dblInto(shortMask, headerStates, 0);
      xorInto(shortMask, 0, this.subkey1, 0, BLOCK);
    }
    for (let k = 0; k < count; k++) {
      const i = order[k]!;
      const start = offsets[i]!;
      const length = offsets[i + 1]! - start;
      const at = tBlockStart[k]! * BLOCK;
      if (length < BLOCK) {
        if (!shared) {
          dblInto(shortMask, headerStates, i * BLOCK);
          xorInto(shortMask, 0, this.subkey1, 0, BLOCK);
        }
        for (let b = 0; b < length; b++) t[at + b] = data[start + b]! ^ shortMask[b]!;
        t[at + length] = 0x80 ^ shortMask[length]!;
        for (let b = length + 1; b < BLOCK; b++) t[at + b] = shortMask[b]!;
      } else {
        // P xorend D: D goes into the last 16 bytes of P, copied in the same pass.
        const xorEnd = at + length - BLOCK;
        const shift = start - at;
        for (let p = at; p < xorEnd; p++) t[p] = data[p + shift]!;
        const state = shared ? 0 : i * BLOCK;
        for (let b = 0; b < BLOCK; b++) t[xorEnd + b] = data[xorEnd + shift + b]! ^ headerStates[state + b]!;
        // The last CMAC block is block-aligned in T: its subkey goes in as four words.
        const last = (at >> 2) + (blockCounts[i]! - 1) * 4;
        const subkey = length % BLOCK === 0 ? subkey1 : subkey2;
        if (length % BLOCK !== 0) t[at + length] = 0x80;
        t32[last] = t32[last]! ^ subkey[0]!;
        t32[last + 1] = t32[last + 1]! ^ subkey[1]!;
        t32[last + 2] = t32[last + 2]! ^ subkey[2]!;
        t32[last + 3] = t32[last + 3]! ^ subkey[3]!;
      }
    }

    const x = new Uint8Array(count * BLOCK);
    const x32 = new Uint32Array(x.buffer);
    let active = count;
    for (let round = 0; round < maxBlocks; round++) {
      while (active > 0 && blockCounts[order[active - 1]!]! <= round) active--;
      for (let k = 0; k < active; k++) {
        const w = k * 4;
        const s = (tBlockStart[k]! + round) * 4;
        x32[w] = x32[w]! ^ t32[s]!;
        x32[w + 1] = x32[w + 1]! ^ t32[s + 1]!;
        x32[w + 2] = x32[w + 2]! ^ t32[s + 2]!;
        x32[w + 3] = x32[w + 3]! ^ t32[s + 3]!;
      }
      x.set(this.mac.encryptBlocks(x.subarray(0, active * BLOCK)));
    }

    const tags = new Uint8Array(count * BLOCK);
    const tags32 = new Uint32Array(tags.buffer);
    for (let k = 0; k < count; k++) {
      const to = order[k]! * 4;
      const from = k * 4;
      tags32[to] = x32[from]!;
      tags32[to + 1] = x32[from + 1]!;
      tags32[to + 2] = x32[from + 2]!;
      tags32[to + 3] = x32[from + 3]!;
    }
    return tags;
  }
}
