/**
 * The batched keyed hash (api/engine/keyedHash.ts) against node:crypto createHmac, bit for bit: 100,000 random
 * values of 0..200 bytes (empty ones included) under random keys of 0..150 bytes (longer than the 64-byte
 * block included) and prefixes of 0..140 bytes, and through the keyring as the engine calls it.
 */
import { createHmac, randomBytes, randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { packByteArrays } from '../../api/engine/_blocks.ts';
import { DIGEST_BYTES, KeyedHash } from '../../api/engine/keyedHash.ts';
import { packUtf8 } from '../../api/engine/_text.ts';
import { keyringOf } from '../support/engine.ts';

describe('keyed hash', () => {
  it('equals createHmac on 100,000 random keys, prefixes and values', () => {
    let mismatches = 0;
    const batches = 200;
    for (let batch = 0; batch < batches; batch++) {
      // Key lengths around the SHA-256 block (64) and the platform's 32, then any.
      const key = randomBytes([0, 1, 32, 63, 64, 65, 128][batch % 7] ?? randomInt(151));
      const prefix = randomBytes(batch % 5 === 0 ? 0 : randomInt(141));
      const values = Array.from({ length: 500 }, (_, i) => randomBytes(i % 25 === 0 ? 0 : randomInt(batch % 2 === 0 ? 70 : 201)));
      const digests = new KeyedHash(key, prefix).digestBatch(packByteArrays(values));
      expect(digests.length).toBe(values.length * DIGEST_BYTES);
      for (let i = 0; i < values.length; i++) {
        const expected = createHmac('sha256', key).update(prefix).update(values[i]!).digest();
        if (!expected.equals(digests.subarray(i * DIGEST_BYTES, (i + 1) * DIGEST_BYTES))) mismatches++;
      }
    }
    expect(mismatches).toBe(0);
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
