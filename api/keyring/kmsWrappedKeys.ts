/**
 * Keys wrapped by KMS: each version's 64 bytes come from GenerateDataKey and are stored as the
 * KMS ciphertext. Decrypt unwraps them at start and for new versions on refresh, always with the
 * encryption context { purpose, keyring, version }, so a wrapped key copied into another keyring
 * or version slot does not decrypt. An imported version's key (the AWS sample's) is wrapped with Encrypt under the
 * same encryption context, so it needs kms:Encrypt for whoever imports it. Unwrapped keys live in memory only.
 */
import { DecryptCommand, EncryptCommand, GenerateDataKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { KeyringError } from '../errors.ts';
import { awsClientConfig, awsFailureMessage, type AwsEndpointOptions } from '../storage/documents.ts';
import type { KeyringEntry, KeyWrapper } from '../types/keyring.ts';
import { KEY_MATERIAL_BYTES } from './manager.ts';

export class KmsWrappedKeys implements KeyWrapper {
  private readonly kms: KMSClient;
  /** Unwrapped keys by their wrapped form, so a refresh calls KMS only for new versions. */
  private readonly unwrapped = new Map<string, Uint8Array>();

  constructor(
    private readonly kmsKeyId: string,
    endpoint: AwsEndpointOptions,
  ) {
    this.kms = new KMSClient(awsClientConfig(endpoint));
  }

  async generate(keyringName: string, version: number): Promise<{ material: Uint8Array; stored: string }> {
    let plaintext: Uint8Array | undefined;
    let wrapped: Uint8Array | undefined;
    try {
      const response = await this.kms.send(
        new GenerateDataKeyCommand({ KeyId: this.kmsKeyId, NumberOfBytes: KEY_MATERIAL_BYTES, EncryptionContext: encryptionContext(keyringName, version) }),
      );
      plaintext = response.Plaintext;
      wrapped = response.CiphertextBlob;
    } catch (error) {
      throw new KeyringError(awsFailureMessage(`KMS GenerateDataKey with key ${this.kmsKeyId} failed`, error), 'keyring-unavailable');
    }
    if (!plaintext || !wrapped) throw new KeyringError('KMS GenerateDataKey returned no key', 'keyring-unavailable');
    const material = new Uint8Array(plaintext);
    plaintext.fill(0);
    return { material, stored: Buffer.from(wrapped).toString('base64') };
  }

  async wrap(keyringName: string, version: number, material: Uint8Array): Promise<string> {
    let wrapped: Uint8Array | undefined;
    try {
      const response = await this.kms.send(new EncryptCommand({ KeyId: this.kmsKeyId, Plaintext: material, EncryptionContext: encryptionContext(keyringName, version) }));
      wrapped = response.CiphertextBlob;
    } catch (error) {
      throw new KeyringError(awsFailureMessage(`KMS Encrypt with key ${this.kmsKeyId} failed`, error), 'keyring-unavailable');
    }
    if (!wrapped) throw new KeyringError('KMS Encrypt returned no ciphertext', 'keyring-unavailable');
    return Buffer.from(wrapped).toString('base64');
  }

  async open(keyringName: string, entry: KeyringEntry): Promise<Uint8Array> {
    const wrapped = entry.key;
    if (wrapped === undefined) throw new KeyringError(`key version ${entry.version} has no stored key`, 'keyring-unavailable');
    const known = this.unwrapped.get(wrapped);
    if (known) return known.slice();
    let plaintext: Uint8Array | undefined;
    try {
      const response = await this.kms.send(
        new DecryptCommand({ CiphertextBlob: Buffer.from(wrapped, 'base64'), KeyId: this.kmsKeyId, EncryptionContext: encryptionContext(keyringName, entry.version) }),
      );
      plaintext = response.Plaintext;
    } catch (error) {
      throw new KeyringError(awsFailureMessage(`KMS Decrypt of key version ${entry.version} failed`, error), 'keyring-unavailable');
    }
    if (!plaintext) throw new KeyringError(`KMS Decrypt of key version ${entry.version} returned no key`, 'keyring-unavailable');
    this.unwrapped.set(wrapped, new Uint8Array(plaintext));
    const copy = new Uint8Array(plaintext);
    plaintext.fill(0);
    return copy;
  }

  retain(storedKeys: ReadonlySet<string>): void {
    for (const [wrapped, material] of this.unwrapped) {
      if (!storedKeys.has(wrapped)) {
        material.fill(0);
        this.unwrapped.delete(wrapped);
      }
    }
  }
}

function encryptionContext(keyringName: string, version: number): Record<string, string> {
  return { purpose: 'pseudonymization-keyring', keyring: keyringName, version: String(version) };
}
