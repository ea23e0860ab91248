/**
 * The pseudonym text format (README "Pseudonym format"), built and parsed here and nowhere else:
 *
 *   <mode><keyVersion>.<payload, unpadded base64url>
 *     s  deterministic AES-SIV, payload V || C
 *     r  randomized AES-SIV, payload nonce || V || C
 *     h  keyed hash, payload HMAC-SHA256 (irreversible)
 *
 * The key version is a decimal integer 1..2^31-1 without leading zeros. The payload has exactly one spelling:
 * Node's own base64url decoder skips characters it does not know and ignores non-zero trailing bits, so the
 * parser checks the alphabet and the canonical trailing bits first. FF1 (`fpe`) pseudonyms keep the
 * identifier's alphabet and length and have no text format of their own.
 */

export type PseudonymMode = 'deterministic' | 'randomized' | 'hash';

const LETTER: Readonly<Record<PseudonymMode, string>> = { deterministic: 's', randomized: 'r', hash: 'h' };
const MODE_OF_LETTER: Readonly<Record<string, PseudonymMode>> = { s: 'deterministic', r: 'randomized', h: 'hash' };

export const MAX_KEY_VERSION = 2 ** 31 - 1;
const MAX_VERSION_DIGITS = String(MAX_KEY_VERSION).length;

export interface ParsedPseudonym {
  readonly mode: PseudonymMode;
  readonly version: number;
  /** Where the payload starts in the text. */
  readonly payloadStart: number;
  /** The payload's length in bytes once decoded. */
  readonly payloadLength: number;
}

function checkVersion(version: number): void {
  if (!Number.isInteger(version) || version < 1 || version > MAX_KEY_VERSION) throw new RangeError('a key version is an integer 1..2^31-1');
}

/** `<mode><version>.`: what every pseudonym of this mode and version starts with. */
export function pseudonymPrefix(mode: PseudonymMode, version: number): string {
  checkVersion(version);
  return `${LETTER[mode]}${version}.`;
}

/**
 * A formatter for many pseudonyms of one mode and version: the payload is `bytes[start, end)`, so a batch's
 * packed output is encoded without copying each item.
 */
export function pseudonymFormatter(mode: PseudonymMode, version: number): (bytes: Buffer, start?: number, end?: number) => string {
  const prefix = pseudonymPrefix(mode, version);
  return (bytes, start = 0, end = bytes.length) => prefix + bytes.toString('base64url', start, end);
}

export function formatPseudonym(mode: PseudonymMode, version: number, payload: Uint8Array): string {
  const bytes = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  return pseudonymFormatter(mode, version)(bytes);
}

const BASE64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const BASE64URL_CODES = Uint8Array.from(BASE64URL_ALPHABET, (c) => c.charCodeAt(0));

/** Characters of `bytes` bytes in unpadded base64url. */
function base64UrlLength(bytes: number): number {
  return Math.floor((bytes * 4 + 2) / 3);
}

/**
 * Many pseudonyms of one mode and version written as ASCII text into one buffer, item i from payload
 * `payloads.data[payloads.offsets[i] .. payloads.offsets[i + 1])`: the same text `pseudonymFormatter` gives,
 * without a JavaScript string per item (a packed answer, e.g. an Arrow column, is written from these bytes).
 */
export function formatPseudonymsPacked(mode: PseudonymMode, version: number, payloads: { readonly data: Uint8Array; readonly offsets: Int32Array }): { data: Buffer; offsets: Int32Array } {
  const prefix = Buffer.from(pseudonymPrefix(mode, version), 'latin1');
  const { data, offsets } = payloads;
  const count = offsets.length - 1;
  const outOffsets = new Int32Array(count + 1);
  let total = 0;
  for (let i = 0; i < count; i++) {
    outOffsets[i] = total;
    total += prefix.length + base64UrlLength(offsets[i + 1]! - offsets[i]!);
  }
  outOffsets[count] = total;
  const out = Buffer.allocUnsafe(total);
  for (let i = 0; i < count; i++) {
    let at = outOffsets[i]!;
    for (const byte of prefix) out[at++] = byte;
    let b = offsets[i]!;
    const end = offsets[i + 1]!;
    for (; b + 3 <= end; b += 3) {
      const n = (data[b]! << 16) | (data[b + 1]! << 8) | data[b + 2]!;
      out[at] = BASE64URL_CODES[n >>> 18]!;
      out[at + 1] = BASE64URL_CODES[(n >>> 12) & 63]!;
      out[at + 2] = BASE64URL_CODES[(n >>> 6) & 63]!;
      out[at + 3] = BASE64URL_CODES[n & 63]!;
      at += 4;
    }
    if (end - b === 2) {
      const n = (data[b]! << 16) | (data[b + 1]! << 8);
      out[at] = BASE64URL_CODES[n >>> 18]!;
      out[at + 1] = BASE64URL_CODES[(n >>> 12) & 63]!;
      out[at + 2] = BASE64URL_CODES[(n >>> 6) & 63]!;
    } else if (end - b === 1) {
      const n = data[b]! << 16;
      out[at] = BASE64URL_CODES[n >>> 18]!;
      out[at + 1] = BASE64URL_CODES[(n >>> 12) & 63]!;
    }
  }
  return { data: out, offsets: outOffsets };
}

/** The mode, version and payload position of a pseudonym, or undefined when it is not one (any malformation). */
export function parsePseudonym(text: string): ParsedPseudonym | undefined {
  const mode = MODE_OF_LETTER[text[0] ?? ''];
  if (mode === undefined) return undefined;
  let version = 0;
  let i = 1;
  for (; i < text.length && i <= MAX_VERSION_DIGITS; i++) {
    const code = text.charCodeAt(i);
    if (code === 46 /* . */) break;
    if (code < 48 || code > 57) return undefined;
    version = version * 10 + (code - 48);
  }
  if (i === 1 || text.charCodeAt(i) !== 46 || text[1] === '0' || version > MAX_KEY_VERSION) return undefined;
  const payloadStart = i + 1;
  if (!isCanonicalBase64Url(text, payloadStart)) return undefined;
  return { mode, version, payloadStart, payloadLength: Math.floor(((text.length - payloadStart) * 3) / 4) };
}

/** The payload's bytes (the text must have been parsed by `parsePseudonym`). */
export function pseudonymPayload(text: string, parsed: ParsedPseudonym): Buffer {
  return Buffer.from(text.slice(parsed.payloadStart), 'base64url');
}

/** Many payloads decoded into one buffer, item k at `data[offsets[k] .. offsets[k + 1])` (the texts parsed by `parsePseudonym`). */
export function pseudonymPayloadsPacked(texts: readonly string[], parsed: readonly ParsedPseudonym[], totalLength: number): { data: Buffer; offsets: Int32Array } {
  const data = Buffer.allocUnsafe(totalLength);
  const offsets = new Int32Array(texts.length + 1);
  let at = 0;
  for (let k = 0; k < texts.length; k++) {
    offsets[k] = at;
    at += data.write(texts[k]!.slice(parsed[k]!.payloadStart), at, 'base64url');
  }
  offsets[texts.length] = at;
  return { data: data.subarray(0, at), offsets };
}

const BASE64URL_VALUE = new Int8Array(128).fill(-1);
BASE64URL_ALPHABET.split('').forEach((c, i) => {
  BASE64URL_VALUE[c.charCodeAt(0)] = i;
});

/** True when `text[from..]` is unpadded base64url in its one canonical spelling. */
function isCanonicalBase64Url(text: string, from: number): boolean {
  const length = text.length - from;
  if (length % 4 === 1) return false;
  let last = 0;
  for (let i = from; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const value = code < 128 ? BASE64URL_VALUE[code]! : -1;
    if (value < 0) return false;
    last = value;
  }
  // The unused low bits of the final character must be zero.
  if (length % 4 === 2) return (last & 0x0f) === 0;
  if (length % 4 === 3) return (last & 0x03) === 0;
  return true;
}
