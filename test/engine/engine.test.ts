import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { aessiv } from '@noble/ciphers/aes.js';
import { FF1 } from '@noble/ciphers/ff1.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RequestError } from '../../api/errors.ts';
import { engineOf, keyringOf } from '../support/engine.ts';

const golden = JSON.parse(readFileSync('test/fixtures/golden-pseudonyms.json', 'utf8')) as {
  rootKeyHex: string;
  vectors: { context: string; value: string; pseudonym: string }[];
};
const goldenRoot = Buffer.from(golden.rootKeyHex, 'hex');
const deriveFrom = (root: Uint8Array, purpose: string, length: number): Uint8Array =>
  new Uint8Array(hkdfSync('sha256', root, new Uint8Array(0), `pseudonymization-platform/v1/${purpose}`, length));
const derive = (purpose: string, length: number): Uint8Array => deriveFrom(goldenRoot, purpose, length);

function freshEngine(cacheEntries = 1000) {
  return engineOf(keyringOf([{ version: 1, state: 'active', root: goldenRoot }]), cacheEntries);
}

function pseudonymize(engine: ReturnType<typeof freshEngine>, context: string, value: string): string {
  return engine.pseudonymize(context, [value], { deterministic: true }).pseudonyms[0]!;
}

describe('pseudonym engine', () => {
  it('reproduces the golden pseudonyms (same key version, context and value give the same pseudonym in any process)', () => {
    const engine = freshEngine();
    for (const v of golden.vectors) expect(pseudonymize(engine, v.context, v.value)).toBe(v.pseudonym);
  });

  it('golden pseudonyms agree with an independent computation (HKDF + noble aessiv / HMAC / noble FF1)', () => {
    const sivKey = derive('aes-siv-512', 64);
    const hmacKey = derive('hmac-sha256', 32);
    const ff1Key = derive('ff1-aes-256', 32);
    for (const v of golden.vectors) {
      let expected: string;
      if (v.context === 'device_id') {
        expected = 'h1.' + createHmac('sha256', hmacKey).update(`${v.context}\u0000${v.value}`, 'utf8').digest('base64url');
      } else if (v.context === 'account_number' || v.context === 'national_id') {
        const alphabet = v.context === 'account_number' ? '0123456789' : '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';
        const digits = Array.from(v.value).map((c) => alphabet.indexOf(c));
        expected = FF1(alphabet.length, ff1Key, Buffer.from(v.context)).encrypt(digits).map((d) => alphabet[d]).join('');
      } else {
        expected = 's1.' + Buffer.from(aessiv(sivKey, Buffer.from(v.context)).encrypt(Buffer.from(v.value, 'utf8'))).toString('base64url');
      }
      expect(v.pseudonym, v.context).toBe(expected);
    }
  });

  it('round-trips any well-formed Unicode string and keeps nulls in place', () => {
    const engine = freshEngine();
    fc.assert(
      fc.property(fc.array(fc.option(fc.string({ unit: 'binary', maxLength: 80 }), { nil: null }), { maxLength: 40 }), (values) => {
        const { pseudonyms, keyVersion } = engine.pseudonymize('email', values, { deterministic: true });
        expect(keyVersion).toBe(1);
        pseudonyms.forEach((p, i) => {
          expect(p === null).toBe(values[i] === null);
        });
        const back = engine.reidentify('email', pseudonyms);
        expect(back.errors).toEqual([]);
        expect(back.values).toEqual(values);
      }),
    );
  });

  it('is deterministic across engine instances and separates contexts', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', minLength: 0, maxLength: 64 }), (value) => {
        const a = pseudonymize(freshEngine(0), 'vin', value);
        const b = pseudonymize(freshEngine(0), 'vin', value);
        expect(a).toBe(b);
        const other = pseudonymize(freshEngine(0), 'email', value);
        expect(other.slice(3)).not.toBe(a.slice(3));
        const crossed = freshEngine().reidentify('email', [a]);
        expect(crossed.values).toEqual([null]);
        expect(crossed.errors).toEqual([{ index: 0, reason: 'authentication-failed' }]);
      }),
      { numRuns: 300 },
    );
  });

  it('never returns a value for a tampered pseudonym', () => {
    const engine = freshEngine();
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 40 }), fc.nat(), fc.nat(), (value, position, replacement) => {
        const pseudonym = pseudonymize(engine, 'vin', value);
        const at = 3 + (position % (pseudonym.length - 3));
        const char = alphabet[replacement % alphabet.length]!;
        fc.pre(char !== pseudonym[at]);
        const tampered = pseudonym.slice(0, at) + char + pseudonym.slice(at + 1);
        const result = engine.reidentify('vin', [tampered]);
        expect(result.values).toEqual([null]);
        expect(['authentication-failed', 'malformed']).toContain(result.errors[0]?.reason);
      }),
      { numRuns: 500 },
    );
  });

  it('never returns a value for a pseudonym with any one bit flipped, in text or payload, amid genuine ones (checked against noble)', () => {
    const root1 = randomBytes(64);
    const root2 = randomBytes(64);
    const key1 = deriveFrom(root1, 'aes-siv-512', 64);
    const key2 = deriveFrom(root2, 'aes-siv-512', 64);
    const context = Buffer.from('vin');
    const values = ['1HGCM82633A004352', '', 'é', 'a'.repeat(16), 'b'.repeat(33), '\u{1F600} VIN'];
    // Genuine pseudonyms written by noble, deterministic and randomized, as the format says (README "Pseudonym format").
    const genuine = values.flatMap((value) => {
      const bytes = Buffer.from(value, 'utf8');
      const nonce = randomBytes(16);
      return [
        's1.' + Buffer.from(aessiv(key1, context).encrypt(bytes)).toString('base64url'),
        'r1.' + Buffer.concat([nonce, aessiv(key1, context, nonce).encrypt(bytes)]).toString('base64url'),
      ];
    });
    const tampered: string[] = [];
    for (const text of genuine) {
      for (let at = 0; at < text.length; at++) {
        for (let bit = 0; bit < 8; bit++) tampered.push(text.slice(0, at) + String.fromCharCode(text.charCodeAt(at) ^ (1 << bit)) + text.slice(at + 1));
      }
      const payload = Buffer.from(text.slice(3), 'base64url');
      for (let bit = 0; bit < payload.length * 8; bit++) {
        const flipped = Buffer.from(payload);
        flipped[bit >> 3]! ^= 1 << (bit & 7);
        tampered.push(text.slice(0, 3) + flipped.toString('base64url'));
      }
    }
    // Genuine and tampered interleaved in one batch: every group (mode, version, malformed) is met within it.
    const batch = tampered.flatMap((text, i) => (i % 50 === 0 ? [genuine[(i / 50) % genuine.length]!, text] : [text]));
    const expectedValues = batch.map((text) => {
      const k = genuine.indexOf(text);
      return k < 0 ? null : values[k >> 1]!;
    });
    const reidentified = engineOf(keyringOf([{ version: 1, state: 'active', root: root1 }])).reidentify('vin', batch);
    expect(reidentified.values).toEqual(expectedValues);
    expect(reidentified.errors.map((e) => e.index)).toEqual(expectedValues.flatMap((value, i) => (value === null ? [i] : [])));

    const rotated = engineOf(keyringOf([{ version: 1, state: 'decrypt-only', root: root1 }, { version: 2, state: 'active', root: root2 }]));
    const rewrapped = rotated.rewrap('vin', batch);
    expect(rewrapped.keyVersion).toBe(2);
    expect(rewrapped.errors).toEqual(reidentified.errors);
    expect(rotated.reidentify('vin', rewrapped.pseudonyms).values).toEqual(expectedValues);
    batch.forEach((text, i) => {
      const value = expectedValues[i];
      if (value === null || !text.startsWith('s')) return;
      expect(rewrapped.pseudonyms[i]).toBe('s2.' + Buffer.from(aessiv(key2, context).encrypt(Buffer.from(value!, 'utf8'))).toString('base64url'));
    });
  });

  it('gives a per-item reason for garbage, truncated, foreign and hashed pseudonyms', () => {
    const engine = freshEngine();
    const good = pseudonymize(engine, 'vin', '1HGCM82633A004352');
    const inputs = ['', 'garbage', 's1.', 's0.AAAA', 'x1.AAAA', 's1.!!!!', 's1.AAAAA', good.slice(0, 39), 's7.' + good.slice(3), 'h1.' + good.slice(3), good + 'A', 's1.' + 'A'.repeat(5000), good];
    const result = engine.reidentify('vin', inputs);
    expect(result.values.slice(0, -1).every((v) => v === null)).toBe(true);
    expect(result.values.at(-1)).toBe('1HGCM82633A004352');
    expect(result.errors.map((e) => e.reason)).toEqual([
      'malformed', 'malformed', 'malformed', 'malformed', 'malformed', 'malformed', 'malformed',
      'authentication-failed', 'unknown-key-version', 'irreversible', 'malformed', 'malformed',
    ]);
  });

  it('randomized mode gives a fresh pseudonym each time that still reidentifies', () => {
    const engine = freshEngine();
    const values = ['1HGCM82633A004352', '1HGCM82633A004352', 'x'];
    const a = engine.pseudonymize('vin', values, { deterministic: false }).pseudonyms;
    const b = engine.pseudonymize('vin', values, { deterministic: false }).pseudonyms;
    expect(a[0]).not.toBe(a[1]);
    expect(a[0]).not.toBe(b[0]);
    expect(a[0]!.startsWith('r1.')).toBe(true);
    expect(engine.reidentify('vin', [...a, ...b]).values).toEqual([...values, ...values]);
    expect(() => engine.pseudonymize('device_id', ['x'], { deterministic: false })).toThrow(RequestError);
  });

  it('FF1 keeps length and alphabet and round-trips', () => {
    const engine = freshEngine();
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...Array.from('0123456789')), minLength: 6, maxLength: 34 }), (digits) => {
        const [pseudonym] = engine.pseudonymize('account_number', [digits], { deterministic: true }).pseudonyms;
        expect(pseudonym).toMatch(/^\d+$/);
        expect(pseudonym!.length).toBe(digits.length);
        expect(engine.reidentify('account_number', [pseudonym!]).values).toEqual([digits]);
      }),
      { numRuns: 200 },
    );
    const [id] = engine.pseudonymize('national_id', ['AB1234567C'], { deterministic: true }).pseudonyms;
    expect(id).toMatch(/^[0-9A-Z]{10}$/);
  });

  it('rejects values a policy cannot take, naming the index and never the value', () => {
    const engine = freshEngine();
    const attempts: [string, (string | null)[]][] = [
      ['account_number', ['123456', '12345', null, '12a456']],
      ['vin', ['ok', '\ud800SENTINEL-LONE']],
      ['vin', ['x'.repeat(1025)]],
    ];
    const reasons = attempts.map(([context, values]) => {
      try {
        engine.pseudonymize(context, values, { deterministic: true });
        return undefined;
      } catch (error) {
        expect(error).toBeInstanceOf(RequestError);
        const e = error as RequestError;
        expect(e.message + JSON.stringify(e.details)).not.toMatch(/12345|12a456|SENTINEL|xxxx/);
        return e.details;
      }
    });
    expect(reasons[0]).toEqual([
      { index: 1, reason: 'is shorter than 6 characters, the FF1 minimum for this alphabet' },
      { index: 3, reason: 'has a character outside the context alphabet' },
    ]);
    expect(reasons[1]).toEqual([{ index: 1, reason: 'is not well-formed Unicode (lone surrogate)' }]);
    expect(reasons[2]).toEqual([{ index: 0, reason: 'is longer than 1024 bytes' }]);
    expect(() => engine.pseudonymize('nope', ['x'], { deterministic: true })).toThrow(/not configured/);
    expect(() => engine.pseudonymize('bad context!', ['x'], { deterministic: true })).toThrow(/context must be/);
  });

  it('after rotation uses the new version, still reidentifies the old one, and reports destroyed keys', () => {
    const root1 = randomBytes(64);
    const root2 = randomBytes(64);
    const keyring = keyringOf([{ version: 1, state: 'active', root: root1 }]);
    const engine = engineOf(keyring);
    const v1 = engine.pseudonymize('vin', ['A', 'B'], { deterministic: true });
    expect(v1.pseudonyms[0]!.startsWith('s1.')).toBe(true);
    keyring.apply([
      { version: 1, state: 'decrypt-only', createdAt: 'x', material: Uint8Array.from(root1) },
      { version: 2, state: 'active', createdAt: 'x', material: Uint8Array.from(root2) },
    ]);
    const v2 = engine.pseudonymize('vin', ['A'], { deterministic: true });
    expect(v2.keyVersion).toBe(2);
    expect(v2.pseudonyms[0]!.startsWith('s2.')).toBe(true);
    expect(engine.reidentify('vin', [v1.pseudonyms[0]!, v2.pseudonyms[0]!]).values).toEqual(['A', 'A']);
    keyring.apply([
      { version: 1, state: 'destroyed', createdAt: 'x' },
      { version: 2, state: 'active', createdAt: 'x', material: Uint8Array.from(root2) },
    ]);
    const after = engine.reidentify('vin', [v1.pseudonyms[1]!, v2.pseudonyms[0]!]);
    expect(after.values).toEqual([null, 'A']);
    expect(after.errors).toEqual([{ index: 0, reason: 'key-destroyed' }]);
  });

  it('gives the deterministic pseudonyms of values under the key versions asked for, as pseudonymize gives them', () => {
    const root1 = randomBytes(64);
    const root2 = randomBytes(64);
    const keyring = keyringOf([
      { version: 1, state: 'decrypt-only', root: root1 },
      { version: 2, state: 'active', root: root2 },
      { version: 3, state: 'destroyed' },
    ]);
    const engine = engineOf(keyring);
    const old = engineOf(keyringOf([{ version: 1, state: 'active', root: root1 }]));
    const [jane] = engine.pseudonymsUnder(keyring.readable(), 'email', ['jane@example.com']);
    expect(jane).toEqual([pseudonymize(old, 'email', 'jane@example.com'), pseudonymize(engine, 'email', 'jane@example.com')]);
    expect(engine.pseudonymsUnder(keyring.readable(), 'device_id', ['d-1'])[0]!.map((p) => p.slice(0, 3))).toEqual(['h1.', 'h2.']);
    expect(() => engine.pseudonymsUnder(keyring.readable(), 'email', ['\ud800'])).toThrow(RequestError);
    // Values that came out of reidentify are not checked again (a policy tightened since must not refuse them).
    expect(engine.pseudonymsUnder(keyring.readable(), 'email', ['\ud800'], { check: false })[0]).toHaveLength(2);
  });

  it('serves repeated values from the cache and counts hits and misses', () => {
    const engine = freshEngine(100);
    const first = engine.pseudonymize('vin', ['A', 'B', 'C'], { deterministic: true }).pseudonyms;
    const second = engine.pseudonymize('vin', ['A', 'B', 'D'], { deterministic: true }).pseudonyms;
    expect(second.slice(0, 2)).toEqual(first.slice(0, 2));
    expect(engine.cacheHits).toBe(2);
    expect(engine.cacheMisses).toBe(4);
    // The cache never answers reidentify: a pseudonym is not a key of it.
    expect(engine.reidentify('vin', [first[0]!]).values).toEqual(['A']);
    expect(engine.cacheHits).toBe(2);
    // Nulls are neither hits nor misses.
    engine.pseudonymize('vin', [null, 'A', null, null, 'E'], { deterministic: true });
    expect([engine.cacheHits, engine.cacheMisses]).toEqual([3, 5]);
  });

  it('encrypts a large batch of distinct strings against a full cache after a sample of 256 lookups, in every transform, and still learns values that recur', () => {
    const reference = freshEngine(0);
    for (const context of ['vin', 'device_id', 'account_number']) {
      const engine = freshEngine(300);
      const distinct = (from: number, count: number): string[] => Array.from({ length: count }, (_, i) => String(from + i));
      engine.pseudonymize(context, distinct(1_000_000, 600), { deterministic: true });
      expect(engine.cacheSize).toBe(300);
      const batch = distinct(2_000_000, 2000).map((value, i) => (i % 97 === 5 ? null : value));
      const lookups = engine.cacheHits + engine.cacheMisses;
      expect(engine.pseudonymize(context, batch, { deterministic: true }).pseudonyms).toEqual(reference.pseudonymize(context, batch, { deterministic: true }).pseudonyms);
      expect(engine.cacheHits + engine.cacheMisses - lookups).toBeLessThanOrEqual(256);
      const recurring = distinct(3_000_000, 1000);
      const expected = reference.pseudonymize(context, recurring, { deterministic: true }).pseudonyms;
      const hitsPerCall = Array.from({ length: 6 }, () => {
        const hits = engine.cacheHits;
        expect(engine.pseudonymize(context, recurring, { deterministic: true }).pseudonyms).toEqual(expected);
        return engine.cacheHits - hits;
      });
      expect(hitsPerCall[0]).toBe(0);
      expect(hitsPerCall[5]).toBeGreaterThan(256);
    }
  });
});
