/** The pseudonym text format: what `format` writes, `parse` reads back; anything else is refused. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodePayloadsPacked,
  formatPseudonym,
  MAX_KEY_VERSION,
  parsePseudonym,
  parsePseudonymHeader,
  pseudonymFormatter,
  pseudonymPayload,
  pseudonymPrefix,
  type PseudonymMode,
} from '../../api/engine/pseudonymFormat.ts';

const MODES: PseudonymMode[] = ['deterministic', 'randomized', 'hash'];

describe('pseudonym format', () => {
  it('writes <mode><version>.<base64url> with s, r and h', () => {
    const payload = Buffer.from([0xfb, 0xff, 0x01]);
    expect(formatPseudonym('deterministic', 1, payload)).toBe('s1.-_8B');
    expect(formatPseudonym('randomized', 12, payload)).toBe('r12.-_8B');
    expect(formatPseudonym('hash', MAX_KEY_VERSION, payload)).toBe(`h${MAX_KEY_VERSION}.-_8B`);
    expect(pseudonymPrefix('deterministic', 7)).toBe('s7.');
    expect(pseudonymFormatter('hash', 2)(Buffer.from('abcdef'), 1, 4)).toBe(formatPseudonym('hash', 2, Buffer.from('bcd')));
  });

  it('reads back whatever it writes: mode, version and payload', () => {
    fc.assert(
      fc.property(fc.constantFrom(...MODES), fc.integer({ min: 1, max: MAX_KEY_VERSION }), fc.uint8Array({ maxLength: 96 }), (mode, version, payload) => {
        const text = formatPseudonym(mode, version, payload);
        const parsed = parsePseudonym(text);
        expect(parsed).toMatchObject({ mode, version, payloadLength: payload.length });
        expect([...pseudonymPayload(text, parsed!)]).toEqual([...payload]);
      }),
      { numRuns: 500 },
    );
  });

  it.each([
    ['', 'empty'],
    ['x1.AAAA', 'unknown mode letter'],
    ['S1.AAAA', 'mode letters are lower case'],
    ['s.AAAA', 'no version'],
    ['s0.AAAA', 'version 0'],
    ['s01.AAAA', 'leading zero'],
    ['s-1.AAAA', 'negative version'],
    ['s1e3.AAAA', 'not decimal digits'],
    ['s2147483648.AAAA', 'version above 2^31-1'],
    ['s99999999999.AAAA', 'oversized version (11 digits)'],
    ['s1AAAA', 'no dot'],
    ['s1.AAA=', 'padding'],
    ['s1.AA+A', 'base64 (not url) alphabet'],
    ['s1.AA A', 'space'],
    ['s1.AAAAA', 'length 1 mod 4'],
    ['s1.AB', 'non-zero trailing bits (2 chars)'],
    ['s1.AAB', 'non-zero trailing bits (3 chars)'],
    ['s1.AAAé', 'non-ASCII'],
  ])('refuses %j (%s)', (text) => {
    expect(parsePseudonym(text)).toBeUndefined();
  });

  it('refuses any tampered spelling of a payload: one pseudonym, one text', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 48 }), fc.nat(), fc.constantFrom(...'=+/ .!~é'.split('')), (payload, at, inserted) => {
        const text = formatPseudonym('deterministic', 3, payload);
        const position = 3 + (at % (text.length - 2));
        expect(parsePseudonym(text.slice(0, position) + inserted + text.slice(position))).toBeUndefined();
      }),
      { numRuns: 500 },
    );
  });

  it('decodes a batch of payloads into one buffer as Node does, and refuses exactly what parsePseudonym refuses', () => {
    const spelling = fc.oneof(
      fc.uint8Array({ maxLength: 70 }).map((payload) => formatPseudonym('deterministic', 1, payload)),
      // Tampered spellings: a character replaced by any other (in and out of the alphabet, non-ASCII too), one dropped or added.
      fc
        .tuple(fc.uint8Array({ minLength: 1, maxLength: 70 }), fc.nat(), fc.constantFrom(...'AQgw-_=+/ .!~é\u0100\u{1F600}'.split('')), fc.constantFrom('replace', 'drop', 'add'))
        .map(([payload, at, char, how]) => {
          const text = formatPseudonym('deterministic', 1, payload);
          const position = 3 + (at % (text.length - 3));
          if (how === 'drop') return text.slice(0, position) + text.slice(position + 1);
          return text.slice(0, position) + char + text.slice(how === 'add' ? position : position + 1);
        }),
    );
    fc.assert(
      fc.property(fc.array(spelling, { maxLength: 30 }), (candidates) => {
        const texts = candidates.filter((text) => parsePseudonymHeader(text) !== undefined);
        const headers = texts.map((text) => parsePseudonymHeader(text)!);
        const capacity = headers.reduce((sum, header) => sum + header.payloadLength, 0);
        const decoded = decodePayloadsPacked(
          texts,
          headers.map((header) => header.payloadStart),
          capacity,
        );
        let malformed = 0;
        texts.forEach((text, k) => {
          const parsed = parsePseudonym(text);
          const item = decoded.data.subarray(decoded.offsets[k], decoded.offsets[k + 1]);
          expect(decoded.canonical[k]).toBe(parsed ? 1 : 0);
          if (parsed) expect([...item]).toEqual([...pseudonymPayload(text, parsed)]);
          else {
            malformed++;
            expect(item.length).toBe(0);
          }
        });
        expect(decoded.malformed).toBe(malformed);
      }),
      { numRuns: 500 },
    );
  });

  it('writes no version outside 1..2^31-1', () => {
    for (const version of [0, -1, 1.5, MAX_KEY_VERSION + 1, Number.NaN]) expect(() => pseudonymPrefix('deterministic', version)).toThrow(RangeError);
  });
});
