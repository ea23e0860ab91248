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
  const parsed = parsePseudonymHeader(text);
  return parsed && hasCanonicalPayload(text, parsed) ? parsed : undefined;
}

/**
 * `parsePseudonym` without the payload's spelling check, for batches whose payloads `decodePayloadsPacked` checks
 * while decoding them (one pass over the characters instead of two). A header that parses is not yet a pseudonym.
 */
export function parsePseudonymHeader(text: string): ParsedPseudonym | undefined {
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
  if ((text.length - payloadStart) % 4 === 1) return undefined;
  return { mode, version, payloadStart, payloadLength: Math.floor(((text.length - payloadStart) * 3) / 4) };
}

/** True when the payload of a text parsed by `parsePseudonymHeader` is spelled canonically (then it is a pseudonym). */
export function hasCanonicalPayload(text: string, parsed: ParsedPseudonym): boolean {
  return isCanonicalBase64Url(text, parsed.payloadStart);
}

/** The payload's bytes (the text must have been parsed by `parsePseudonym`). */
export function pseudonymPayload(text: string, parsed: ParsedPseudonym): Buffer {
  return Buffer.from(text.slice(parsed.payloadStart), 'base64url');
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

/** Many payloads decoded into one buffer, and which of them were spelled canonically. */
export interface DecodedPayloads {
  /** Item k is `data[offsets[k] .. offsets[k + 1])`; an item that is not canonical has no bytes. */
  readonly data: Uint8Array;
  readonly offsets: Int32Array;
  /** 1 where item k is canonical unpadded base64url (the check `parsePseudonym` makes), 0 where it is not. */
  readonly canonical: Uint8Array;
  readonly malformed: number;
}

/**
 * The payloads of `texts[k]` from `payloadStarts[k]` (headers parsed by `parsePseudonymHeader`) decoded into one
 * buffer of `capacity` bytes (the sum of their `payloadLength`), the spelling checked in the same pass: no string
 * slice or buffer per pseudonym, and no second pass over the characters. Bit-identical to Node's base64url decoder
 * on every canonical payload (test/engine/pseudonymFormat.test.ts); Node's decoder itself skips unknown characters,
 * which is why the check comes first everywhere.
 */
export function decodePayloadsPacked(texts: readonly string[], payloadStarts: readonly number[], capacity: number): DecodedPayloads {
  const count = texts.length;
  const data = new Uint8Array(capacity);
  const offsets = new Int32Array(count + 1);
  const canonical = new Uint8Array(count);
  let malformed = 0;
  let at = 0;
  for (let k = 0; k < count; k++) {
    offsets[k] = at;
    const text = texts[k]!;
    const start = payloadStarts[k]!;
    const end = text.length;
    const whole = start + ((end - start) & ~3);
    let ok = true;
    let p = start;
    let out = at;
    for (; p < whole; p += 4) {
      const c0 = text.charCodeAt(p);
      const c1 = text.charCodeAt(p + 1);
      const c2 = text.charCodeAt(p + 2);
      const c3 = text.charCodeAt(p + 3);
      if ((c0 | c1 | c2 | c3) > 127) {
        ok = false;
        break;
      }
      const v0 = BASE64URL_VALUE[c0]!;
      const v1 = BASE64URL_VALUE[c1]!;
      const v2 = BASE64URL_VALUE[c2]!;
      const v3 = BASE64URL_VALUE[c3]!;
      // An unknown character is -1: any of them makes the OR negative.
      if ((v0 | v1 | v2 | v3) < 0) {
        ok = false;
        break;
      }
      const n = (v0 << 18) | (v1 << 12) | (v2 << 6) | v3;
      data[out] = n >>> 16;
      data[out + 1] = (n >>> 8) & 0xff;
      data[out + 2] = n & 0xff;
      out += 3;
    }
    const rest = end - p;
    if (ok && rest !== 0) {
      // 2 or 3 characters: 1 or 2 bytes, and the unused low bits of the last character must be zero.
      const c0 = text.charCodeAt(p);
      const c1 = text.charCodeAt(p + 1);
      const c2 = rest === 3 ? text.charCodeAt(p + 2) : 65; /* 'A', value 0 */
      const v0 = (c0 | c1 | c2) > 127 ? -1 : BASE64URL_VALUE[c0]!;
      const v1 = BASE64URL_VALUE[c1 & 127]!;
      const v2 = BASE64URL_VALUE[c2 & 127]!;
      const n = (v0 << 18) | (v1 << 12) | (v2 << 6);
      if (rest === 1 || (v0 | v1 | v2) < 0 || (rest === 2 ? v1 & 0x0f : v2 & 0x03) !== 0) ok = false;
      else {
        data[out] = n >>> 16;
        if (rest === 3) data[out + 1] = (n >>> 8) & 0xff;
        out += rest - 1;
      }
    }
    if (ok) {
      canonical[k] = 1;
      at = out;
    } else malformed++;
  }
  offsets[count] = at;
  return { data: data.subarray(0, at), offsets, canonical, malformed };
}

/** The modes `parsePseudonymHeadersPacked` reports: code c (1..3) is `PACKED_HEADER_MODES[c - 1]`, 0 none. */
export const PACKED_HEADER_MODES: readonly PseudonymMode[] = ['deterministic', 'randomized', 'hash'];

/** The headers of a packed batch of texts, per item (see `parsePseudonymHeadersPacked`). */
export interface PackedPseudonymHeaders {
  /** 0 where item i is null or no pseudonym header parses (malformed); else 1 + its index in `PACKED_HEADER_MODES`. */
  readonly modes: Uint8Array;
  readonly versions: Int32Array;
  /** Where item i's payload starts in the batch's `data`. */
  readonly payloadStarts: Int32Array;
}

/**
 * `parsePseudonymHeader` over every item of a packed batch of UTF-8 texts (an Arrow column: item i is
 * `data[offsets[i] .. offsets[i + 1])`, null where bit i of `validity` is clear), into typed arrays: no string or object
 * per item. A header is ASCII, and no byte of a multi-byte UTF-8 character is, so the bytes parse as the text does.
 * The payload's length is counted in bytes where the text counts UTF-16 units; they differ only for a payload that is not
 * ASCII, which is not canonical base64url and so malformed either way.
 */
export function parsePseudonymHeadersPacked(data: Uint8Array, offsets: Int32Array, validity: Uint8Array | undefined): PackedPseudonymHeaders {
  const count = offsets.length - 1;
  const modes = new Uint8Array(count);
  const versions = new Int32Array(count);
  const payloadStarts = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    if (validity !== undefined && (validity[i >> 3]! & (1 << (i & 7))) === 0) continue;
    const start = offsets[i]!;
    const end = offsets[i + 1]!;
    if (start >= end) continue;
    const letter = data[start]!;
    const mode = letter === 0x73 /* s */ ? 1 : letter === 0x72 /* r */ ? 2 : letter === 0x68 /* h */ ? 3 : 0;
    if (mode === 0) continue;
    let version = 0;
    let p = start + 1;
    for (; p < end && p - start <= MAX_VERSION_DIGITS; p++) {
      const code = data[p]!;
      if (code === 46 /* . */) break;
      if (code < 48 || code > 57) {
        version = -1;
        break;
      }
      version = version * 10 + (code - 48);
    }
    if (version < 0 || p === start + 1 || p >= end || data[p] !== 46 || data[start + 1] === 48 /* 0 */ || version > MAX_KEY_VERSION) continue;
    const payloadStart = p + 1;
    if ((end - payloadStart) % 4 === 1) continue;
    modes[i] = mode;
    versions[i] = version;
    payloadStarts[i] = payloadStart;
  }
  return { modes, versions, payloadStarts };
}

/**
 * `decodePayloadsPacked` for payloads held as bytes: payload k is `bytes[payloadStarts[k] .. payloadEnds[k])` (headers
 * parsed by `parsePseudonymHeadersPacked`), decoded into one buffer of `capacity` bytes (the sum of each payload's
 * `floor(length * 3 / 4)`) with the same canonical-spelling check in the same pass.
 */
export function decodePayloadsPackedBytes(bytes: Uint8Array, payloadStarts: ArrayLike<number>, payloadEnds: ArrayLike<number>, capacity: number): DecodedPayloads {
  const count = payloadStarts.length;
  const data = new Uint8Array(capacity);
  const offsets = new Int32Array(count + 1);
  const canonical = new Uint8Array(count);
  let malformed = 0;
  let at = 0;
  for (let k = 0; k < count; k++) {
    offsets[k] = at;
    const start = payloadStarts[k]!;
    const end = payloadEnds[k]!;
    const whole = start + ((end - start) & ~3);
    let ok = true;
    let p = start;
    let out = at;
    for (; p < whole; p += 4) {
      const c0 = bytes[p]!;
      const c1 = bytes[p + 1]!;
      const c2 = bytes[p + 2]!;
      const c3 = bytes[p + 3]!;
      if ((c0 | c1 | c2 | c3) > 127) {
        ok = false;
        break;
      }
      const v0 = BASE64URL_VALUE[c0]!;
      const v1 = BASE64URL_VALUE[c1]!;
      const v2 = BASE64URL_VALUE[c2]!;
      const v3 = BASE64URL_VALUE[c3]!;
      if ((v0 | v1 | v2 | v3) < 0) {
        ok = false;
        break;
      }
      const n = (v0 << 18) | (v1 << 12) | (v2 << 6) | v3;
      data[out] = n >>> 16;
      data[out + 1] = (n >>> 8) & 0xff;
      data[out + 2] = n & 0xff;
      out += 3;
    }
    const rest = end - p;
    if (ok && rest === 1) ok = false;
    else if (ok && rest !== 0) {
      // 2 or 3 characters: 1 or 2 bytes, and the unused low bits of the last character must be zero.
      const c0 = bytes[p]!;
      const c1 = bytes[p + 1]!;
      const c2 = rest === 3 ? bytes[p + 2]! : 65; /* 'A', value 0 */
      const v0 = (c0 | c1 | c2) > 127 ? -1 : BASE64URL_VALUE[c0]!;
      const v1 = BASE64URL_VALUE[c1 & 127]!;
      const v2 = BASE64URL_VALUE[c2 & 127]!;
      const n = (v0 << 18) | (v1 << 12) | (v2 << 6);
      if ((v0 | v1 | v2) < 0 || (rest === 2 ? v1 & 0x0f : v2 & 0x03) !== 0) ok = false;
      else {
        data[out] = n >>> 16;
        if (rest === 3) data[out + 1] = (n >>> 8) & 0xff;
        out += rest - 1;
      }
    }
    if (ok) {
      canonical[k] = 1;
      at = out;
    } else malformed++;
  }
  offsets[count] = at;
  return { data: data.subarray(0, at), offsets, canonical, malformed };
}
