/**
 * Format-preserving encryption with FF1 (NIST SP 800-38G Rev. 1,
 * https://doi.org/10.6028/NIST.SP.800-38Gr1-draft) from `@noble/ciphers`, for identifiers that
 * must keep their length and alphabet (account numbers, national IDs).
 *
 * noble does the cipher; this file adds what a service needs around it: alphabets, and the
 * Rev. 1 domain rule radix^length >= 1,000,000 (noble enforces only the original >= 100).
 * The tweak is the context, so equal values in different contexts encrypt differently.
 */
import { FF1 } from '@noble/ciphers/ff1.js';
import { CryptoInputError } from '../errors.ts';

/** Minimum domain size of SP 800-38G Rev. 1 (section 5.2). */
const MIN_DOMAIN = 1_000_000n;
const AES_KEY_LENGTHS: readonly number[] = [16, 24, 32];

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

/** FF1 over numeral strings: the production path for digits, used by the string wrapper and the conformance runner. */
export class Ff1Digits {
  private readonly cipher: ReturnType<typeof FF1>;
  readonly radix: number;
  readonly minLength: number;

  constructor(radix: number, key: Uint8Array, tweak: Uint8Array) {
    if (!AES_KEY_LENGTHS.includes(key.length)) throw new CryptoInputError('FF1 key must be 16, 24 or 32 bytes');
    if (!Number.isInteger(radix) || radix < 2 || radix > 65535) throw new CryptoInputError('FF1 radix must be 2..65535');
    this.radix = radix;
    this.minLength = minimumLength(radix);
    this.cipher = FF1(radix, key, tweak);
  }

  encrypt(digits: number[]): number[] {
    this.check(digits);
    return this.cipher.encrypt(digits);
  }

  decrypt(digits: number[]): number[] {
    this.check(digits);
    return this.cipher.decrypt(digits);
  }

  private check(digits: number[]): void {
    if (digits.length < this.minLength) {
      throw new CryptoInputError(`FF1 input must have at least ${this.minLength} characters for this alphabet`);
    }
    for (const digit of digits) {
      if (!Number.isInteger(digit) || digit < 0 || digit >= this.radix) throw new CryptoInputError('FF1 input has a character outside the alphabet');
    }
  }
}

/** FF1 over strings of one alphabet: each character maps to its position in the alphabet. */
export class Ff1Text {
  private readonly digits: Ff1Digits;
  private readonly alphabet: readonly string[];
  private readonly positions: ReadonlyMap<string, number>;

  constructor(alphabet: string, key: Uint8Array, tweak: Uint8Array) {
    this.alphabet = Array.from(alphabet); // code points
    this.positions = new Map(this.alphabet.map((c, i) => [c, i]));
    if (this.positions.size !== this.alphabet.length) throw new CryptoInputError('FF1 alphabet has a repeated character');
    this.digits = new Ff1Digits(this.alphabet.length, key, tweak);
  }

  encrypt(text: string): string {
    return this.fromDigits(this.digits.encrypt(this.toDigits(text)));
  }

  decrypt(text: string): string {
    return this.fromDigits(this.digits.decrypt(this.toDigits(text)));
  }

  private toDigits(text: string): number[] {
    const out: number[] = [];
    for (const c of text) {
      const position = this.positions.get(c);
      if (position === undefined) throw new CryptoInputError('FF1 input has a character outside the alphabet');
      out.push(position);
    }
    return out;
  }

  private fromDigits(digits: number[]): string {
    let out = '';
    for (const d of digits) out += this.alphabet[d]!;
    return out;
  }
}

/** Why a value cannot be encrypted under this alphabet and length limit, or undefined when it can. */
export function fpeRejectReason(alphabet: string, maxLength: number, text: string): string | undefined {
  const chars = Array.from(text); // code points
  const minLength = minimumLength(Array.from(alphabet).length);
  if (chars.length < minLength) return `is shorter than ${minLength} characters, the FF1 minimum for this alphabet`;
  if (chars.length > maxLength) return `is longer than ${maxLength} characters`;
  for (const c of chars) if (!alphabet.includes(c)) return 'has a character outside the context alphabet';
  return undefined;
}
