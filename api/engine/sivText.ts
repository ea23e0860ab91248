/**
 * Deterministic AES-SIV pseudonyms of a packed batch, as text: `prefix + base64url(V || C)` per value, packed.
 *
 * Two implementations give the same bytes: the addon native/aes_siv.c (the whole batch in one call: S2V's blocks,
 * the CTR counters and XOR and base64url in C, every AES call on the OpenSSL inside node), about 3.5x less CPU per
 * value than JavaScript, and `AesSiv.encryptBatch` + `formatPseudonymsPacked` where the addon is not there
 * (api/engine/_native.ts says when). test/engine/sivText.test.ts checks both against each other and against
 * @noble/ciphers on over a million random inputs.
 */
import { loadAddon } from './_native.ts';
import { packByteArrays, type PackedBytes } from './_blocks.ts';
import { formatPseudonymsPacked, pseudonymPrefix } from './pseudonymFormat.ts';
import { AesSiv } from './siv.ts';

/** native/aes_siv.c. */
interface AesSivAddon {
  pseudonyms(macKey: Uint8Array, ctrKey: Uint8Array, headerState: Uint8Array, data: Uint8Array, offsets: Int32Array, prefix: Uint8Array): { data: Buffer; offsets: Int32Array };
}

export type SivTextImplementation = 'openssl-batch-native' | 'javascript';

/** The addon, or null where none is usable (api/engine/_native.ts finds and loads it, once). */
function loaded(): AesSivAddon | null {
  return loadAddon<AesSivAddon>('aes_siv.node', answersKnownValues) ?? null;
}

/** Which implementation serves this process. */
export function sivTextImplementation(): SivTextImplementation {
  return loaded() ? 'openssl-batch-native' : 'javascript';
}

/** The deterministic pseudonyms of `plaintexts` under `siv` in a context whose S2V header state is `headerState`. */
export function deterministicPseudonymsPacked(siv: AesSiv, headerState: Uint8Array, plaintexts: PackedBytes, version: number): { data: Buffer; offsets: Int32Array } {
  const native = loaded();
  return native ? nativePseudonyms(native, siv, headerState, plaintexts, version) : javascriptPseudonyms(siv, headerState, plaintexts, version);
}

/** The JavaScript implementation, for the tests and benchmarks that compare the two. */
export function javascriptPseudonyms(siv: AesSiv, headerState: Uint8Array, plaintexts: PackedBytes, version: number): { data: Buffer; offsets: Int32Array } {
  return formatPseudonymsPacked('deterministic', version, siv.encryptBatch(headerState, plaintexts));
}

/** The addon's implementation; undefined where it is not loaded. */
export function nativePseudonymsIfLoaded(siv: AesSiv, headerState: Uint8Array, plaintexts: PackedBytes, version: number): { data: Buffer; offsets: Int32Array } | undefined {
  const native = loaded();
  return native ? nativePseudonyms(native, siv, headerState, plaintexts, version) : undefined;
}

function nativePseudonyms(native: AesSivAddon, siv: AesSiv, headerState: Uint8Array, plaintexts: PackedBytes, version: number): { data: Buffer; offsets: Int32Array } {
  const [macKey, ctrKey] = siv.keyHalves();
  const prefix = Buffer.from(pseudonymPrefix('deterministic', version), 'latin1');
  return native.pseudonyms(macKey, ctrKey, headerState, plaintexts.data, plaintexts.offsets, prefix);
}

/**
 * The addon against the JavaScript path for each key size, on values around the block boundaries: an addon built
 * against headers that do not match the running node's OpenSSL fails here, once, and is not used.
 */
function answersKnownValues(candidate: AesSivAddon): boolean {
  const values = packByteArrays([0, 1, 15, 16, 17, 31, 32, 33, 100].map((length) => new Uint8Array(length).fill(0x61 + (length % 26))));
  for (const keyLength of [32, 48, 64]) {
    const siv = new AesSiv(new Uint8Array(keyLength).map((_, i) => i * 7 + keyLength));
    const header = siv.headerState([Buffer.from('known-answer')]);
    const expected = javascriptPseudonyms(siv, header, values, 1);
    const got = nativePseudonyms(candidate, siv, header, values, 1);
    if (!got.data.equals(expected.data) || got.offsets.some((offset, i) => offset !== expected.offsets[i])) return false;
  }
  return true;
}
