/**
 * The AWS sample service's pseudonyms (aws-samples/pseudonymization-service), read so that tables it wrote can be
 * reidentified and rewrapped into this service's pseudonyms. Decrypt-only: nothing here makes new ones for callers.
 *
 * Format, as the sample's Java classes write it (worked out from their outputs, test/fixtures in ../shared):
 *
 *   base64( N ‖ AES-256-GCM-SIV(key = encodedSecretKey, nonce = N, no associated data)(UTF-8 value) ‖ tag )
 *
 * N is 12 bytes: deterministic pseudonyms take the ASCII characters nonceStrPos..nonceEndPos of the lowercase hex
 * HMAC-SHA256(encodedNonceKey, UTF-8 value); randomized ones 12 random bytes. Decryption needs only the AES key
 * and N from the pseudonym, so both kinds decrypt alike. The HMAC key is kept with the version so that a subject's
 * deterministic sample pseudonym can be computed (for a cross-check, and for finding rows not yet migrated).
 *
 * AES-GCM-SIV (RFC 8452) is @noble/ciphers' `gcmsiv`; no other primitive, none written here.
 */
import { createHmac } from 'node:crypto';
import { gcmsiv } from '@noble/ciphers/aes.js';
import { z } from 'zod';
import { KeyringError } from '../errors.ts';

export const AWS_SAMPLE_NONCE_BYTES = 12;
const TAG_BYTES = 16;
export const AWS_SAMPLE_KEY_BYTES = 32;
/** Characters in the hex of an HMAC-SHA256. */
const HMAC_HEX_CHARS = 64;

/**
 * The sample's pseudonym bytes (nonce ‖ ciphertext ‖ tag) when `text` is in its format: standard base64 with
 * padding, in its one canonical spelling, long enough for a nonce and a tag and at most `maxValueBytes` of value.
 */
export function parseAwsSamplePseudonym(text: string, maxValueBytes: number): Uint8Array | undefined {
  const minimum = AWS_SAMPLE_NONCE_BYTES + TAG_BYTES;
  if (text.length % 4 !== 0 || text.length < (4 * minimum) / 3 || text.length > Math.ceil((minimum + maxValueBytes) / 3) * 4) return undefined;
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  // Node's decoder ignores non-zero trailing bits: only the canonical spelling is the pseudonym.
  if (bytes.length < minimum || bytes.toString('base64') !== text) return undefined;
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** One imported sample key: the contexts it served and its key material (AES key ‖ HMAC key). */
export class AwsSampleKey {
  private readonly secretKey: Uint8Array;
  private readonly nonceKey: Uint8Array;
  private destroyed = false;

  constructor(
    readonly version: number,
    readonly contexts: readonly string[],
    material: Uint8Array,
    private readonly nonceStrPos: number,
    private readonly nonceEndPos: number,
  ) {
    if (material.length <= AWS_SAMPLE_KEY_BYTES) throw new KeyringError(`key version ${version} has the wrong length`, 'keyring-unavailable');
    this.secretKey = material.slice(0, AWS_SAMPLE_KEY_BYTES);
    this.nonceKey = material.slice(AWS_SAMPLE_KEY_BYTES);
  }

  /** The value's UTF-8 bytes, or undefined when the pseudonym does not authenticate under this key. */
  decrypt(payload: Uint8Array): Uint8Array | undefined {
    this.assertUsable();
    const nonce = payload.subarray(0, AWS_SAMPLE_NONCE_BYTES);
    try {
      return gcmsiv(this.secretKey, nonce).decrypt(payload.subarray(AWS_SAMPLE_NONCE_BYTES));
    } catch {
      return undefined;
    }
  }

  /** The sample's deterministic pseudonym of `value`, as its Pseudonymization class writes it. */
  deterministicPseudonym(value: string): string {
    this.assertUsable();
    const hex = createHmac('sha256', this.nonceKey).update(value, 'utf8').digest('hex');
    const nonce = Buffer.from(hex.slice(this.nonceStrPos, this.nonceEndPos), 'latin1');
    const sealed = gcmsiv(this.secretKey, nonce).encrypt(Buffer.from(value, 'utf8'));
    return Buffer.concat([nonce, sealed]).toString('base64');
  }

  destroy(): void {
    this.destroyed = true;
    this.secretKey.fill(0);
    this.nonceKey.fill(0);
  }

  private assertUsable(): void {
    if (this.destroyed) throw new KeyringError(`key version ${this.version} is destroyed`);
  }
}

const base64Key = z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/);
const sampleSecretSchema = z.object({
  encodedSecretKey: base64Key,
  encodedNonceKey: base64Key,
  nonceStrPos: z.number().int().nonnegative(),
  nonceEndPos: z.number().int().positive(),
});

export interface AwsSampleSecret {
  /** AES key ‖ HMAC key, as the keyring stores the version. */
  readonly material: Uint8Array;
  readonly nonceStrPos: number;
  readonly nonceEndPos: number;
}

/**
 * The sample's Secrets Manager secret (its JSON text): `encodedSecretKey`, `encodedNonceKey`, `nonceStrPos`,
 * `nonceEndPos`; other keys (`api_key_value`) are ignored. Errors name the field, never its value.
 */
export function parseAwsSampleSecret(text: string): AwsSampleSecret {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new KeyringError('the AWS sample secret is not valid JSON');
  }
  const parsed = sampleSecretSchema.safeParse(json);
  if (!parsed.success) {
    const fields = [...new Set(parsed.error.issues.map((issue) => String(issue.path[0] ?? '')))].filter((f) => f in sampleSecretSchema.shape);
    throw new KeyringError(`the AWS sample secret needs ${fields.length > 0 ? fields.join(', ') : 'encodedSecretKey, encodedNonceKey, nonceStrPos and nonceEndPos'} in the sample's shape`);
  }
  const { encodedSecretKey, encodedNonceKey, nonceStrPos, nonceEndPos } = parsed.data;
  const secretKey = Buffer.from(encodedSecretKey, 'base64');
  const nonceKey = Buffer.from(encodedNonceKey, 'base64');
  if (secretKey.length !== AWS_SAMPLE_KEY_BYTES) throw new KeyringError(`the AWS sample secret's encodedSecretKey must be ${AWS_SAMPLE_KEY_BYTES} bytes (AES-256)`);
  if (nonceKey.length === 0) throw new KeyringError("the AWS sample secret's encodedNonceKey is empty");
  if (nonceEndPos - nonceStrPos !== AWS_SAMPLE_NONCE_BYTES || nonceEndPos > HMAC_HEX_CHARS) {
    throw new KeyringError(`the AWS sample secret's nonceStrPos..nonceEndPos must span ${AWS_SAMPLE_NONCE_BYTES} of the HMAC's ${HMAC_HEX_CHARS} hex characters`);
  }
  const material = new Uint8Array(Buffer.concat([secretKey, nonceKey]));
  secretKey.fill(0);
  nonceKey.fill(0);
  return { material, nonceStrPos, nonceEndPos };
}
