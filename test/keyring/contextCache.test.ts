/**
 * A key version's per-context caches (api/keyring/keyring.ts): when one fills up it is emptied, and what its entries
 * held of the key goes with them. An evicted FF1 cipher's key copy (the addon's) and S2V header states are zeroed, so
 * a cipher kept past its eviction refuses to work; the version itself keeps working, the same answers as before.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ALPHABETS } from '../../api/engine/ff1.ts';
import { KeyVersion } from '../../api/keyring/keyring.ts';

/** keyring.ts MAX_CACHED_CONTEXTS. */
const CONTEXTS = 10_000;

describe('per-context caches of a key version', () => {
  it('zero what an evicted entry held of the key, and the version keeps giving the same answers', () => {
    const key = new KeyVersion(1, 'active', randomBytes(64));
    const values = ['4111111111111111', '5500000000000004'];
    const first = key.ff1('card', ALPHABETS.digits);
    const before = first.encryptBatch(values);
    const header = key.headerState('card');
    const headerBefore = Uint8Array.from(header);
    const hashBefore = key.keyedHash('card').digestBatch({ data: Buffer.from('abc'), offsets: Int32Array.of(0, 3) });
    for (let i = 0; i < CONTEXTS; i++) {
      key.ff1(`context-${i}`, ALPHABETS.digits);
      key.headerState(`context-${i}`);
      key.keyedHash(`context-${i}`);
    }
    // Evicted: the FF1 cipher refuses (its key copy is zero), the header state held zeros.
    expect(() => first.encryptBatch(values)).toThrow(/destroyed/);
    expect(header.every((byte) => byte === 0)).toBe(true);
    // The version itself: fresh entries, the same answers (the keyed hash's key is the version's own, never zeroed).
    expect(key.ff1('card', ALPHABETS.digits).encryptBatch(values)).toEqual(before);
    expect(key.headerState('card')).toEqual(headerBefore);
    expect(key.keyedHash('card').digestBatch({ data: Buffer.from('abc'), offsets: Int32Array.of(0, 3) })).toEqual(hashBefore);
    key.destroy();
    expect(() => key.ff1('card', ALPHABETS.digits)).toThrow(/destroyed/);
  });
});
