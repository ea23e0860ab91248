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
import { timingSafeEqual } from 'node:crypto';
import { AesBlockFunction, BLOCK, dbl, packedCount, xorInto, type PackedBytes } from './_blocks.ts';
import { CryptoInputError } from '../errors.ts';

/** K1 || K2: two AES-128, AES-192 or AES-256 keys. The platform uses 64 bytes (AES-256). */
export const SIV_KEY_LENGTHS: readonly number[] = [32, 48, 64];

export interface SivDecryptResult {
  /** Plaintexts in input order; an item that failed verification is empty. */
  readonly plaintexts: PackedBytes;
  /** 1 where the item authenticated, 0 where it did not (tampered, truncated, other AD or key). */
  readonly valid: Uint8Array;
}

export class AesSiv {
  private readonly mac: AesBlockFunction;
  private readonly ctr: AesBlockFunction;
  private readonly subkey1: Uint8Array;
  private readonly subkey2: Uint8Array;
  private readonly cmacOfZero: Uint8Array;

  constructor(key: Uint8Array) {
    if (!SIV_KEY_LENGTHS.includes(key.length)) {
      throw new CryptoInputError('AES-SIV key must be 32, 48 or 64 bytes');
    }
    const half = key.length / 2;
    this.mac = new AesBlockFunction(key.subarray(0, half));
    this.ctr = new AesBlockFunction(key.subarray(half));
    // CMAC subkeys (RFC 4493 section 2.3): L = AES(K, 0^128), K1 = dbl(L), K2 = dbl(K1).
    const l = this.mac.encryptBlocks(new Uint8Array(BLOCK));
    this.subkey1 = dbl(l);
    this.subkey2 = dbl(this.subkey1);
    l.fill(0);
    this.cmacOfZero = this.cmac(new Uint8Array(BLOCK));
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
    const count = packedCount(plaintexts);
    this.checkHeaderStates(headerStates, count);
    const tags = this.s2v(headerStates, plaintexts);
    const inOffsets = plaintexts.offsets;
    const base = inOffsets[0]!;
    const outOffsets = new Int32Array(count + 1);
    for (let i = 0; i <= count; i++) outOffsets[i] = inOffsets[i]! - base + BLOCK * i;
    const output = new Uint8Array(outOffsets[count]!);
    for (let i = 0; i < count; i++) output.set(tags.subarray(i * BLOCK, (i + 1) * BLOCK), outOffsets[i]);
    this.applyKeystream(tags, plaintexts, output, outOffsets, BLOCK);
    return { data: output, offsets: outOffsets };
  }

  /** Decrypts and verifies every V || C under the same header states as encryption. */
  decryptBatch(headerStates: Uint8Array, ciphertexts: PackedBytes): SivDecryptResult {
    const count = packedCount(ciphertexts);
    this.checkHeaderStates(headerStates, count);
    const { data, offsets } = ciphertexts;
    const valid = new Uint8Array(count);
    const tags = new Uint8Array(count * BLOCK);
    // Where the ciphertext part of each item starts; the lengths come from plainOffsets.
    const bodyStarts = new Int32Array(count + 1);
    const plainOffsets = new Int32Array(count + 1);
    for (let i = 0; i < count; i++) {
      const start = offsets[i]!;
      const length = offsets[i + 1]! - start;
      if (length >= BLOCK) {
        valid[i] = 1;
        tags.set(data.subarray(start, start + BLOCK), i * BLOCK);
        bodyStarts[i] = start + BLOCK;
        plainOffsets[i + 1] = plainOffsets[i]! + length - BLOCK;
      } else {
        bodyStarts[i] = start;
        plainOffsets[i + 1] = plainOffsets[i]!;
      }
    }
    const plain = new Uint8Array(plainOffsets[count]!);
    const cipherBodies: PackedBytes = { data, offsets: bodyStarts };
    this.applyKeystream(tags, cipherBodies, plain, plainOffsets, 0, plainOffsets);
    const plaintexts: PackedBytes = { data: plain, offsets: plainOffsets };
    const expected = this.s2v(headerStates, plaintexts);
    for (let i = 0; i < count; i++) {
      if (!valid[i]) continue;
      const ok = timingSafeEqual(expected.subarray(i * BLOCK, (i + 1) * BLOCK), tags.subarray(i * BLOCK, (i + 1) * BLOCK));
      if (!ok) {
        valid[i] = 0;
        plain.fill(0, plainOffsets[i], plainOffsets[i + 1]);
      }
    }
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
    return { plaintexts: { data: plain.subarray(0, write), offsets: compactOffsets }, valid };
  }

  private checkHeaderStates(headerStates: Uint8Array, count: number): void {
    if (headerStates.length !== BLOCK && headerStates.length !== BLOCK * count) {
      throw new CryptoInputError('header states must be 16 bytes, or 16 bytes per value');
    }
  }

  /**
   * XORs item i of `input` with the CTR keystream started at tag i (RFC 5297 section 2.6: Q = V with
   * bits 63 and 31 cleared) and writes it to `output` at `outOffsets[i] + shift`.
   * `lengthOffsets` gives the item lengths when the input offsets are item starts only.
   */
  private applyKeystream(
    tags: Uint8Array,
    input: PackedBytes,
    output: Uint8Array,
    outOffsets: Int32Array,
    shift: number,
    lengthOffsets: Int32Array = input.offsets,
  ): void {
    const count = outOffsets.length - 1;
    const blockStarts = new Int32Array(count + 1);
    for (let i = 0; i < count; i++) {
      const length = lengthOffsets[i + 1]! - lengthOffsets[i]!;
      blockStarts[i + 1] = blockStarts[i]! + Math.ceil(length / BLOCK);
    }
    const counters = new Uint8Array(blockStarts[count]! * BLOCK);
    for (let i = 0; i < count; i++) {
      const blocks = blockStarts[i + 1]! - blockStarts[i]!;
      if (blocks === 0) continue;
      const t = i * BLOCK;
      // Clearing the top bit of the low 32-bit word means the increment below never carries.
      const low = (((tags[t + 12]! & 0x7f) << 24) | (tags[t + 13]! << 16) | (tags[t + 14]! << 8) | tags[t + 15]!) >>> 0;
      let p = blockStarts[i]! * BLOCK;
      for (let j = 0; j < blocks; j++, p += BLOCK) {
        for (let b = 0; b < 12; b++) counters[p + b] = tags[t + b]!;
        counters[p + 8]! &= 0x7f;
        const c = low + j;
        counters[p + 12] = c >>> 24;
        counters[p + 13] = (c >>> 16) & 0xff;
        counters[p + 14] = (c >>> 8) & 0xff;
        counters[p + 15] = c & 0xff;
      }
    }
    const keystream = this.ctr.encryptBlocks(counters);
    const inData = input.data;
    for (let i = 0; i < count; i++) {
      const length = lengthOffsets[i + 1]! - lengthOffsets[i]!;
      const src = input.offsets[i]!;
      const dst = outOffsets[i]! + shift;
      const ks = blockStarts[i]! * BLOCK;
      for (let b = 0; b < length; b++) output[dst + b] = inData[src + b]! ^ keystream[ks + b]!;
    }
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

    // T for short plaintexts is dbl(D) xor pad(P), one complete CMAC block: fold K1 in as well.
    const shortMask = new Uint8Array(BLOCK);
    if (shared) {
      shortMask.set(dbl(headerStates));
      xorInto(shortMask, 0, this.subkey1, 0, BLOCK);
    }
    for (let k = 0; k < count; k++) {
      const i = order[k]!;
      const start = offsets[i]!;
      const length = offsets[i + 1]! - start;
      const at = tBlockStart[k]! * BLOCK;
      for (let b = 0; b < length; b++) t[at + b] = data[start + b]!;
      if (length < BLOCK) {
        t[at + length] = 0x80;
        if (!shared) {
          shortMask.set(dbl(headerStates.subarray(i * BLOCK, (i + 1) * BLOCK)));
          xorInto(shortMask, 0, this.subkey1, 0, BLOCK);
        }
        xorInto(t, at, shortMask, 0, BLOCK);
      } else {
        xorInto(t, at + length - BLOCK, headerStates, shared ? 0 : i * BLOCK, BLOCK);
        const last = at + (blockCounts[i]! - 1) * BLOCK;
        if (length % BLOCK === 0) xorInto(t, last, this.subkey1, 0, BLOCK);
        else {
          t[at + length] = 0x80;
          xorInto(t, last, this.subkey2, 0, BLOCK);
        }
      }
    }

    const x = new Uint8Array(count * BLOCK);
    const x32 = new Uint32Array(x.buffer);
    const t32 = new Uint32Array(t.buffer);
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
