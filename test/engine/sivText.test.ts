import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { aessiv } from '@noble/ciphers/aes.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { packByteArrays, packedItem } from '../../api/engine/_blocks.ts';
import { nativeAddons } from '../../api/engine/_native.ts';
import { AesSiv } from '../../api/engine/siv.ts';
import { deterministicPseudonymsPacked, javascriptPseudonyms, nativePseudonymsIfLoaded, sivTextImplementation } from '../../api/engine/sivText.ts';

const ADDON = fileURLToPath(new URL('../../dist/native/aes_siv.node', import.meta.url));

/** The pseudonym text noble's aessiv gives, as the platform writes it. */
function nobleText(key: Uint8Array, context: Uint8Array, input: Uint8Array, version: number): string {
  return `s${version}.` + Buffer.from(aessiv(key, context).encrypt(input)).toString('base64url');
}

function texts(packed: { data: Buffer; offsets: Int32Array }): string[] {
  return Array.from({ length: packed.offsets.length - 1 }, (_, i) => packed.data.toString('latin1', packed.offsets[i], packed.offsets[i + 1]));
}

describe('deterministic AES-SIV pseudonym text, native and JavaScript', () => {
  it('serves from the native addon wherever it is built (the test command builds it)', () => {
    // Under CI the build ran first, so the addon must be there and load: a silent fall-back would hide a broken build.
    if (process.env.CI) expect(sivTextImplementation()).toBe('openssl-batch-native');
    expect(['openssl-batch-native', 'javascript']).toContain(sivTextImplementation());
    expect(nativeAddons()['aes_siv.node']).toBe(sivTextImplementation() === 'openssl-batch-native' ? 'loaded' : expect.any(String));
  });

  it('is bit-identical to @noble/ciphers aessiv, in both implementations, on random keys, contexts and batches', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(32, 48, 64).chain((length) => fc.uint8Array({ minLength: length, maxLength: length })),
        fc.uint8Array({ maxLength: 23 }),
        fc.array(fc.uint8Array({ maxLength: 80 }), { minLength: 0, maxLength: 40 }),
        fc.integer({ min: 1, max: 99_999 }),
        (key, context, inputs, version) => {
          const siv = new AesSiv(key);
          const header = siv.headerState([context]);
          const packed = packByteArrays(inputs);
          const expected = inputs.map((input) => nobleText(key, context, input, version));
          expect(texts(javascriptPseudonyms(siv, header, packed, version))).toEqual(expected);
          const native = nativePseudonymsIfLoaded(siv, header, packed, version);
          if (native) expect(texts(native)).toEqual(expected);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('gives the same bytes and offsets as the JavaScript path on 200,000 random values (lengths 0..300, batches over one chunk)', () => {
    for (let batch = 0; batch < 20; batch++) {
      const key = randomBytes([32, 48, 64][batch % 3]!);
      const siv = new AesSiv(key);
      const header = siv.headerState([randomBytes(batch)]);
      // Lengths skewed short, as identifiers are, with some long values: CMAC rounds end at different points in a chunk.
      const values = packByteArrays(Array.from({ length: 10_000 }, (_, i) => randomBytes(i % 97 === 0 ? 100 + (i % 201) : i % 40)));
      const expected = javascriptPseudonyms(siv, header, values, batch + 1);
      const got = deterministicPseudonymsPacked(siv, header, values, batch + 1);
      expect(Buffer.compare(got.data, expected.data)).toBe(0);
      expect(Array.from(got.offsets)).toEqual(Array.from(expected.offsets));
    }
  });

  it('reads values where the offsets say, also when they do not start at 0', () => {
    const siv = new AesSiv(randomBytes(64));
    const header = siv.headerState([Buffer.from('vin')]);
    const whole = packByteArrays([Buffer.from('skipped'), Buffer.from('VIN0000000000001'), Buffer.from('')]);
    const tail = { data: whole.data, offsets: whole.offsets.subarray(1) };
    expect(texts(deterministicPseudonymsPacked(siv, header, tail, 1))).toEqual(texts(javascriptPseudonyms(siv, header, packByteArrays([packedItem(whole, 1), packedItem(whole, 2)]), 1)));
  });

  it('is no longer usable once the key version is destroyed: the kept key is zeroed and every call refused', () => {
    const siv = new AesSiv(randomBytes(64));
    const header = siv.headerState([Buffer.from('vin')]);
    const values = packByteArrays([Buffer.from('VIN0000000000001')]);
    expect(texts(deterministicPseudonymsPacked(siv, header, values, 1))).toHaveLength(1);
    const [k1] = siv.keyHalves();
    siv.destroy();
    expect(k1.every((byte) => byte === 0)).toBe(true);
    expect(() => deterministicPseudonymsPacked(siv, header, values, 1)).toThrow(/destroyed/);
    expect(() => javascriptPseudonyms(siv, header, values, 1)).toThrow(/destroyed/);
    expect(() => siv.decryptBatch(header, values)).toThrow(/destroyed/);
    expect(() => siv.headerState([Buffer.from('vin')])).toThrow(/destroyed/);
  });

  it.runIf(Boolean(process.env.CI) || sivTextImplementation() === 'openssl-batch-native')('the addon refuses misuse with a TypeError instead of reading out of bounds', () => {
    const addon = createRequire(import.meta.url)(ADDON) as { pseudonyms: (...args: unknown[]) => { data: Buffer; offsets: Int32Array } };
    const key = new Uint8Array(32);
    const state = new Uint8Array(16);
    const prefix = Buffer.from('s1.');
    const data = Buffer.from('abc');
    const call = (...args: unknown[]): (() => unknown) => () => addon.pseudonyms(...args);
    expect(call(key, key, state, data, Int32Array.of(0, 3))).toThrow(TypeError);
    expect(call(key, key, state, data, Int32Array.of(0, 4), prefix)).toThrow(/offsets out of range/);
    expect(call(key, key, state, data, Int32Array.of(2, 1), prefix)).toThrow(/offsets out of range/);
    expect(call(key, key, state, data, Int32Array.of(-1, 1), prefix)).toThrow(/offsets out of range/);
    expect(call(key, key, state, data, new Int32Array(0), prefix)).toThrow(/count \+ 1/);
    expect(call(new Uint8Array(20), new Uint8Array(20), state, data, Int32Array.of(0, 3), prefix)).toThrow(/keys of 16, 24 or 32/);
    expect(call(key, new Uint8Array(16), state, data, Int32Array.of(0, 3), prefix)).toThrow(/keys of 16, 24 or 32/);
    expect(call(key, key, new Uint8Array(15), data, Int32Array.of(0, 3), prefix)).toThrow(/16 bytes/);
    expect(call(key, key, state, [1, 2, 3], Int32Array.of(0, 3), prefix)).toThrow(TypeError);
    expect(call(key, key, state, data, Uint32Array.of(0, 3), prefix)).toThrow(TypeError);
    expect(addon.pseudonyms(key, key, state, data, Int32Array.of(0), prefix).data.length).toBe(0);
  });

  it.runIf(Boolean(process.env.CI) || sivTextImplementation() === 'openssl-batch-native')('the addon writes nothing the caller passed: arguments sharing one ArrayBuffer give the same answer', () => {
    const addon = createRequire(import.meta.url)(ADDON) as { pseudonyms: (...args: unknown[]) => { data: Buffer; offsets: Int32Array } };
    // Keys, state, prefix, values and offsets all views of one buffer: the answer is what separate copies give.
    const shared = new ArrayBuffer(256);
    const bytes = new Uint8Array(shared);
    bytes.set(randomBytes(256));
    const key = new Uint8Array(shared, 0, 32);
    const state = new Uint8Array(shared, 32, 16);
    const values = new Uint8Array(shared, 48, 64);
    const offsets = new Int32Array(shared, 112, 3);
    offsets.set([0, 17, 40]);
    const prefix = new Uint8Array(shared, 124, 3);
    const before = Buffer.from(bytes);
    const answer = addon.pseudonyms(key, key, state, values, offsets, prefix);
    expect(Buffer.from(bytes).equals(before)).toBe(true);
    const copy = (view: Uint8Array): Uint8Array => Uint8Array.from(view);
    const separate = addon.pseudonyms(copy(key), copy(key), copy(state), copy(values), Int32Array.from(offsets), copy(prefix));
    expect(answer.data.equals(separate.data)).toBe(true);
    expect(Array.from(answer.offsets)).toEqual(Array.from(separate.offsets));
    expect(answer.offsets.buffer).not.toBe(shared);
  });
});
