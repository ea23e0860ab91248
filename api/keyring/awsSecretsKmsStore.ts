/**
 * The production keyring: a Secrets Manager secret holding the keyring document, in which each
 * version's 64-byte key is a KMS ciphertext from GenerateDataKey. KMS Decrypt unwraps it at start
 * (and for new versions on refresh), always with the encryption context
 * { purpose, keyring, version }, so a wrapped key copied into another keyring or version slot
 * does not decrypt. Unwrapped keys live in memory only.
 */
import { DecryptCommand, GenerateDataKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import {
  CreateSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { KeyringError } from '../errors.ts';
import type { KeyringDocument, KeyringEntry, KeyringStore } from '../types/keyring.ts';
import { KEY_MATERIAL_BYTES, parseKeyringDocument } from './manager.ts';

export interface AwsKeyringOptions {
  readonly secretId: string;
  readonly kmsKeyId: string;
  readonly region: string;
  /** A local endpoint such as moto's; unset in AWS. */
  readonly endpoint?: string | undefined;
}

export class SecretsManagerKmsKeyringStore implements KeyringStore {
  readonly description: string;
  private readonly secrets: SecretsManagerClient;
  private readonly kms: KMSClient;
  /** Unwrapped keys by their wrapped form, so a refresh calls KMS only for new versions. */
  private readonly unwrapped = new Map<string, Uint8Array>();

  constructor(private readonly options: AwsKeyringOptions) {
    this.description = `Secrets Manager secret ${options.secretId}`;
    const clientConfig = { region: options.region, ...(options.endpoint ? { endpoint: options.endpoint } : {}), maxAttempts: 5 };
    this.secrets = new SecretsManagerClient(clientConfig);
    this.kms = new KMSClient(clientConfig);
  }

  async read(): Promise<KeyringDocument | undefined> {
    let secretString: string | undefined;
    try {
      const response = await this.secrets.send(new GetSecretValueCommand({ SecretId: this.options.secretId }));
      secretString = response.SecretString;
    } catch (error) {
      if (error instanceof ResourceNotFoundException) return undefined;
      throw unavailable(`cannot read ${this.description}`, error);
    }
    if (secretString === undefined) throw new KeyringError(`${this.description} has no string value`);
    const document = parseKeyringDocument(secretString, this.description);
    // Forget unwrapped keys of versions that are gone, and zero them.
    const stillStored = new Set(document.versions.map((v) => v.key).filter((k): k is string => k !== undefined));
    for (const [wrapped, material] of this.unwrapped) {
      if (!stillStored.has(wrapped)) {
        material.fill(0);
        this.unwrapped.delete(wrapped);
      }
    }
    return document;
  }

  async write(document: KeyringDocument): Promise<void> {
    const SecretString = JSON.stringify(document);
    try {
      await this.secrets.send(new PutSecretValueCommand({ SecretId: this.options.secretId, SecretString }));
    } catch (error) {
      if (!(error instanceof ResourceNotFoundException)) throw unavailable(`cannot write ${this.description}`, error);
      try {
        await this.secrets.send(
          new CreateSecretCommand({
            Name: this.options.secretId,
            SecretString,
            KmsKeyId: this.options.kmsKeyId,
            Description: 'Pseudonymization keyring: KMS-wrapped data keys by version',
          }),
        );
      } catch (createError) {
        throw unavailable(`cannot create ${this.description}`, createError);
      }
    }
  }

  async forgetPreviousCopies(document: KeyringDocument): Promise<void> {
    // PutSecretValue moves AWSPREVIOUS to the version that was current; writing the same document
    // once more leaves the version that still held the destroyed key without labels (deprecated).
    await this.write(document);
  }

  async generate(name: string, version: number): Promise<{ material: Uint8Array; stored: string }> {
    try {
      const response = await this.kms.send(
        new GenerateDataKeyCommand({
          KeyId: this.options.kmsKeyId,
          NumberOfBytes: KEY_MATERIAL_BYTES,
          EncryptionContext: encryptionContext(name, version),
        }),
      );
      if (!response.Plaintext || !response.CiphertextBlob) throw new KeyringError('KMS GenerateDataKey returned no key');
      const stored = Buffer.from(response.CiphertextBlob).toString('base64');
      const material = new Uint8Array(response.Plaintext);
      response.Plaintext.fill(0);
      return { material, stored };
    } catch (error) {
      throw unavailable(`KMS GenerateDataKey with key ${this.options.kmsKeyId} failed`, error);
    }
  }

  async open(name: string, entry: KeyringEntry): Promise<Uint8Array> {
    const wrapped = entry.key;
    if (wrapped === undefined) throw new KeyringError(`key version ${entry.version} has no stored key`);
    const known = this.unwrapped.get(wrapped);
    if (known) return known.slice();
    let plaintext: Uint8Array | undefined;
    try {
      const response = await this.kms.send(
        new DecryptCommand({
          CiphertextBlob: Buffer.from(wrapped, 'base64'),
          KeyId: this.options.kmsKeyId,
          EncryptionContext: encryptionContext(name, entry.version),
        }),
      );
      plaintext = response.Plaintext;
    } catch (error) {
      throw unavailable(`KMS Decrypt of key version ${entry.version} failed`, error);
    }
    if (!plaintext) throw new KeyringError(`KMS Decrypt of key version ${entry.version} returned no key`);
    this.unwrapped.set(wrapped, new Uint8Array(plaintext));
    const copy = new Uint8Array(plaintext);
    plaintext.fill(0);
    return copy;
  }
}

function encryptionContext(name: string, version: number): Record<string, string> {
  return { purpose: 'pseudonymization-keyring', keyring: name, version: String(version) };
}

/** AWS errors name the operation and the AWS error type; their messages can quote request data, so they are left out. */
function unavailable(what: string, error: unknown): KeyringError {
  if (error instanceof KeyringError) return error;
  const type = error instanceof Error ? error.name : 'unknown error';
  return new KeyringError(`${what}: ${type}`, 'keyring-unavailable');
}
