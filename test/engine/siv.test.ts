import { randomBytes } from 'node:crypto';
import { aessiv } from '@noble/ciphers/aes.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { packByteArrays, packedItem } from '../../api/engine/_blocks.ts';
import { AesSiv } from '../../api/engine/siv.ts';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s/g, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('AES-SIV batch engine', () => {
  it('reproduces RFC 5297 A.1 (deterministic authenticated encryption)', () => {
    const siv = new AesSiv(hex('fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0 f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff'));
    const header = siv.headerState([hex('101112131415161718191a1b1c1d1e1f2021222324252627')]);
    const out = siv.encryptBatch(header, packByteArrays([hex('112233445566778899aabbccddee')]));
    expect(toHex(packedItem(out, 0))).toBe('85632d07c6e8f37f950acd320a2ecc9340c02b9690c4dc04daef7f6afe5c');
  });

  it('reproduces RFC 5297 A.2 (nonce-based, two associated-data components and a nonce)', () => {
    const siv = new AesSiv(hex('7f7e7d7c7b7a79787776757473727170 404142434445464748494a4b4c4d4e4f'));
    const header = siv.headerState([
      hex('00112233445566778899aabbccddeeffdeaddadadeaddadaffeeddccbbaa99887766554433221100'),
      hex('102030405060708090a0'),
    ]);
    const states = siv.headerStatesWithNonces(header, hex('09f911029d74e35bd84156c5635688c0'));
    const plaintext = hex('7468697320697320736f6d6520706c61696e7465787420746f20656e6372797074207573696e67205349562d414553');
    const out = siv.encryptBatch(states, packByteArrays([plaintext]));
    expect(toHex(packedItem(out, 0))).toBe(
      '7bdb6e3b432667eb06f4d14bff2fbd0fcb900f2fddbe404326601965c889bf17dba77ceb094fa663b7a3f748ba8af829ea64ad544a272e9c485b62a3fd5c0d',
    );
    const back = siv.decryptBatch(states, out);
    expect(back.valid[0]).toBe(1);
    expect(toHex(packedItem(back.plaintexts, 0))).toBe(toHex(plaintext));
  });

  // The 1,000,000-input run is `npm run verify:siv` (scripts/verify-siv.ts): too slow for a busy machine's test run.
  it('is bit-identical to @noble/ciphers aessiv on random keys, contexts and batches of inputs, and decrypts them back', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(32, 48, 64).chain((length) => fc.uint8Array({ minLength: length, maxLength: length })),
        fc.uint8Array({ maxLength: 23 }),
        fc.array(fc.uint8Array({ maxLength: 64 }), { minLength: 1, maxLength: 40 }),
        (key, context, inputs) => {
          const siv = new AesSiv(key);
          const header = siv.headerState([context]);
          const out = siv.encryptBatch(header, packByteArrays(inputs));
          inputs.forEach((input, i) => {
            expect(toHex(packedItem(out, i))).toBe(toHex(aessiv(key, context).encrypt(input)));
          });
          const back = siv.decryptBatch(header, out);
          inputs.forEach((input, i) => {
            expect(back.valid[i]).toBe(1);
            expect(toHex(packedItem(back.plaintexts, i))).toBe(toHex(input));
          });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('decrypts what noble encrypts and refuses what noble refuses, tampered items mixed into one batch', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(32, 48, 64).chain((length) => fc.uint8Array({ minLength: length, maxLength: length })),
        fc.uint8Array({ maxLength: 23 }),
        fc.array(fc.tuple(fc.uint8Array({ maxLength: 64 }), fc.option(fc.nat(), { nil: undefined })), { minLength: 1, maxLength: 40 }),
        (key, context, items) => {
          // Each item is noble's V || C, with one bit flipped where a position is given (anywhere in tag or body).
          const ciphertexts = items.map(([input, flip]) => {
            const ciphertext = aessiv(key, context).encrypt(input);
            if (flip !== undefined) ciphertext[(flip >> 3) % ciphertext.length]! ^= 1 << (flip & 7);
            return ciphertext;
          });
          const siv = new AesSiv(key);
          const back = siv.decryptBatch(siv.headerState([context]), packByteArrays(ciphertexts));
          let at = 0;
          ciphertexts.forEach((ciphertext, i) => {
            let expected: Uint8Array | undefined;
            try {
              expected = aessiv(key, context).decrypt(ciphertext);
            } catch {
              expected = undefined;
            }
            expect(back.valid[i]).toBe(expected ? 1 : 0);
            if (items[i]![1] !== undefined) expect(expected).toBeUndefined();
            const item = packedItem(back.plaintexts, i);
            expect(toHex(item)).toBe(expected ? toHex(expected) : '');
            at += item.length;
          });
          expect(back.plaintexts.data.length).toBe(at);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('matches noble in nonce-based mode for mixed lengths in one batch', () => {
    const key = randomBytes(64);
    const context = Buffer.from('email');
    const siv = new AesSiv(key);
    const inputs = Array.from({ length: 2000 }, (_, i) => randomBytes(i % 97));
    const nonces = randomBytes(16 * inputs.length);
    const out = siv.encryptBatch(siv.headerStatesWithNonces(siv.headerState([context]), nonces), packByteArrays(inputs));
    inputs.forEach((input, i) => {
      expect(toHex(packedItem(out, i))).toBe(toHex(aessiv(key, context, nonces.subarray(16 * i, 16 * i + 16)).encrypt(input)));
    });
  });

  it('rejects every single-bit change of tag or ciphertext, a truncation, and another context', () => {
    const siv = new AesSiv(randomBytes(64));
    const header = siv.headerState([Buffer.from('vin')]);
    const original = packedItem(siv.encryptBatch(header, packByteArrays([Buffer.from('1HGCM82633A004352')])), 0);
    const tampered: Uint8Array[] = [];
    for (let bit = 0; bit < original.length * 8; bit++) {
      const copy = Uint8Array.from(original);
      copy[bit >> 3]! ^= 1 << (bit & 7);
      tampered.push(copy);
    }
    tampered.push(original.subarray(0, original.length - 1), original.subarray(0, 15), new Uint8Array(0));
    const result = siv.decryptBatch(header, packByteArrays(tampered));
    expect([...result.valid].every((v) => v === 0)).toBe(true);
    expect(result.plaintexts.data.length).toBe(0);
    const otherContext = siv.decryptBatch(siv.headerState([Buffer.from('email')]), packByteArrays([original]));
    expect(otherContext.valid[0]).toBe(0);
  });

  it('refuses keys that are not 32, 48 or 64 bytes', () => {
    for (const length of [0, 16, 31, 33, 63, 65, 128]) expect(() => new AesSiv(new Uint8Array(length))).toThrow(/32, 48 or 64/);
  });
});
