/**
 * Format-preserving encryption with FF1 (NIST SP 800-38G Rev. 1,
 * https://doi.org/10.6028/NIST.SP.800-38Gr1-draft), for identifiers that must keep their length and
 * alphabet (account numbers, national IDs).
 *
 * The cipher is ff1Batch.ts (whole batches on OpenSSL; `@noble/ciphers` FF1 is its reference in the tests and
 * `npm run verify:ff1`). This file adds what a service needs around it: alphabets, strings in and out, and
 * the Rev. 1 domain rule radix^length >= 1,000,000 (the original standard asks only >= 100).
 * The tweak is the context, so equal values in different contexts encrypt differently.
 */
import { CryptoInputError } from '../errors.ts';
import { Ff1Batch, type PackedNumerals } from './ff1Batch.ts';

/** Minimum domain size of SP 800-38G Rev. 1 (section 5.2). */
const MIN_DOMAIN = 1_000_000n;

export const ALPHABETS = {
  digits: '0123456789',
  'lower-alphanumeric': '0123456789abcdefghijklmnopqrstuvwxyz',
  'upper-alphanumeric': '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ',
  alphanumeric: '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz',
} as const;

export type AlphabetName = keyof typeof ALPHABETS;

/** The shortest numeral string FF1 accepts for this radix under Rev. 1. */
export function minimumLength(radix: number): number {
  let length = 0;
  for (let domain = 1n; domain < MIN_DOMAIN; domain *= BigInt(radix)) length++;
  return Math.max(length, 2);
}

/** FF1 over numeral strings: used by the conformance runner and for single values. */
export class Ff1Digits {
  private readonly cipher: Ff1Batch;
  readonly radix: number;
  readonly minLength: number;

  constructor(radix: number, key: Uint8Array, tweak: Uint8Array) {
    this.cipher = new Ff1Batch(radix, key, tweak);
    this.radix = radix;
    this.minLength = minimumLength(radix);
  }

  encrypt(digits: number[]): number[] {
    return Array.from(this.cipher.encrypt(this.pack(digits)));
  }

  decrypt(digits: number[]): number[] {
    return Array.from(this.cipher.decrypt(this.pack(digits)));
  }

  private pack(digits: number[]): PackedNumerals {
    if (digits.length < this.minLength) {
      throw new CryptoInputError(`FF1 input must have at least ${this.minLength} characters for this alphabet`);
    }
    for (const digit of digits) {
      if (!Number.isInteger(digit) || digit < 0 || digit >= this.radix) throw new CryptoInputError('FF1 input has a character outside the alphabet');
    }
    return { digits: Uint16Array.from(digits), offsets: Int32Array.of(0, digits.length) };
  }
}

/** An alphabet's characters (code points) and a fast position lookup. */
class Alphabet {
  readonly characters: readonly string[];
  readonly minLength: number;
  /** Position by UTF-16 code unit when every character is one code unit (else undefined); -1 outside. */
  private readonly byCodeUnit: Int32Array | undefined;
  private readonly byCharacter: ReadonlyMap<string, number>;
  /** Every character is below 128: output strings are written as bytes. */
  readonly ascii: boolean;

  constructor(alphabet: string) {
    this.characters = Array.from(alphabet);
    this.byCharacter = new Map(this.characters.map((c, i) => [c, i]));
    if (this.byCharacter.size !== this.characters.length) throw new CryptoInputError('FF1 alphabet has a repeated character');
    this.minLength = minimumLength(this.characters.length);
    const singleUnit = this.characters.every((c) => c.length === 1 && !isSurrogate(c.charCodeAt(0)));
    this.ascii = singleUnit && this.characters.every((c) => c.charCodeAt(0) < 128);
    if (singleUnit) {
      let maxCode = 0;
      for (const c of this.characters) maxCode = Math.max(maxCode, c.charCodeAt(0));
      this.byCodeUnit = new Int32Array(maxCode + 1).fill(-1);
      this.characters.forEach((c, i) => {
        this.byCodeUnit![c.charCodeAt(0)] = i;
      });
    }
  }

  /** Length in characters (code points) and whether every character is in the alphabet; -1 when one is not. */
  positionsInto(text: string, out: Uint16Array | undefined, at: number): number {
    const table = this.byCodeUnit;
    if (table) {
      for (let i = 0; i < text.length; i++) {
        const code = text.charCodeAt(i);
        const position = code < table.length ? table[code]! : -1;
        if (position < 0) return -1;
        if (out) out[at + i] = position;
      }
      return text.length;
    }
    let length = 0;
    for (const c of text) {
      const position = this.byCharacter.get(c);
      if (position === undefined) return -1;
      if (out) out[at + length] = position;
      length++;
    }
    return length;
  }
}

function isSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdfff;
}

const alphabets = new Map<string, Alphabet>();

function alphabetOf(alphabet: string): Alphabet {
  let parsed = alphabets.get(alphabet);
  if (!parsed) {
    parsed = new Alphabet(alphabet);
    if (alphabets.size >= 256) alphabets.clear();
    alphabets.set(alphabet, parsed);
  }
  return parsed;
}

/** FF1 over strings of one alphabet: each character maps to its position in the alphabet. */
export class Ff1Text {
  private readonly cipher: Ff1Batch;
  private readonly alphabet: Alphabet;

  constructor(alphabet: string, key: Uint8Array, tweak: Uint8Array) {
    this.alphabet = alphabetOf(alphabet);
    this.cipher = new Ff1Batch(this.alphabet.characters.length, key, tweak);
  }

  encrypt(text: string): string {
    return this.encryptBatch([text])[0]!;
  }

  decrypt(text: string): string {
    return this.decryptBatch([text])[0]!;
  }

  /** Zeroes the key-derived state (a destroyed key version). */
  destroy(): void {
    this.cipher.destroy();
  }

  /** Encrypts every value as one batch; each must be of the alphabet and at least the minimum length. */
  encryptBatch(values: readonly string[]): string[] {
    const packed = this.toNumerals(values);
    return this.fromNumerals(this.cipher.encrypt(packed), packed.offsets);
  }

  decryptBatch(values: readonly string[]): string[] {
    const packed = this.toNumerals(values);
    return this.fromNumerals(this.cipher.decrypt(packed), packed.offsets);
  }

  private toNumerals(values: readonly string[]): PackedNumerals {
    let capacity = 0;
    for (const value of values) capacity += value.length;
    const digits = new Uint16Array(capacity);
    const offsets = new Int32Array(values.length + 1);
    let at = 0;
    for (let i = 0; i < values.length; i++) {
      offsets[i] = at;
      const length = this.alphabet.positionsInto(values[i]!, digits, at);
      if (length < 0) throw new CryptoInputError('FF1 input has a character outside the alphabet');
      if (length < this.alphabet.minLength) {
        throw new CryptoInputError(`FF1 input must have at least ${this.alphabet.minLength} characters for this alphabet`);
      }
      at += length;
    }
    offsets[values.length] = at;
    return { digits: digits.subarray(0, at), offsets };
  }

  private fromNumerals(digits: Uint16Array, offsets: Int32Array): string[] {
    const count = offsets.length - 1;
    const out = new Array<string>(count);
    const characters = this.alphabet.characters;
    if (this.alphabet.ascii) {
      const bytes = Buffer.allocUnsafe(digits.length);
      for (let j = 0; j < digits.length; j++) bytes[j] = characters[digits[j]!]!.charCodeAt(0);
      for (let i = 0; i < count; i++) out[i] = bytes.toString('latin1', offsets[i], offsets[i + 1]);
      return out;
    }
    for (let i = 0; i < count; i++) {
      let text = '';
      for (let j = offsets[i]!; j < offsets[i + 1]!; j++) text += characters[digits[j]!]!;
      out[i] = text;
    }
    return out;
  }
}

/** Why a value cannot be encrypted under this alphabet and length limit, or undefined when it can. */
export function fpeRejectReason(alphabet: string, maxLength: number, text: string): string | undefined {
  const parsed = alphabetOf(alphabet);
  const length = parsed.positionsInto(text, undefined, 0);
  if (length >= parsed.minLength && length <= maxLength) return undefined;
  // The slow path only for values that are refused, with the reasons in their usual order.
  const chars = Array.from(text); // code points
  if (chars.length < parsed.minLength) return `is shorter than ${parsed.minLength} characters, the FF1 minimum for this alphabet`;
  if (chars.length > maxLength) return `is longer than ${maxLength} characters`;
  return 'has a character outside the context alphabet';
}
