/**
 * Where the service keeps its small secret documents (keyring, API key hashes): a local file
 * only its owner can read, or a Secrets Manager secret. Both hold one JSON text.
 */
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  CreateSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { DocumentStoreError } from '../errors.ts';

export interface TextDocumentStore {
  /** Says where the document is, for logs and errors; holds no secret. */
  readonly description: string;
  /** The text, or undefined when the document does not exist yet. */
  read(): Promise<string | undefined>;
  write(text: string): Promise<void>;
}

export interface AwsEndpointOptions {
  readonly region: string;
  /** A local endpoint such as moto's; unset in AWS. */
  readonly endpoint?: string | undefined;
}

export function awsClientConfig(options: AwsEndpointOptions): { region: string; endpoint?: string; maxAttempts: number } {
  return { region: options.region, ...(options.endpoint ? { endpoint: options.endpoint } : {}), maxAttempts: 5 };
}

/** AWS error messages can quote request data: a failure is described by the operation and the error type only. */
export function awsFailureMessage(what: string, error: unknown): string {
  return `${what}: ${error instanceof Error ? error.name : 'unknown error'}`;
}

function storeFailure(what: string, error: unknown): DocumentStoreError {
  return error instanceof DocumentStoreError ? error : new DocumentStoreError(awsFailureMessage(what, error));
}

/** A file with mode 0600 in a folder with mode 0700, replaced atomically (temporary file, fsync, rename). */
export class PrivateFile implements TextDocumentStore {
  readonly description: string;

  constructor(private readonly path: string) {
    this.description = `local file ${path}`;
  }

  async read(): Promise<string | undefined> {
    let mode: number;
    try {
      mode = (await stat(this.path)).mode;
    } catch (error) {
      if (typeof error === 'object' && error !== null && 'code' in error && error.code === 'ENOENT') return undefined;
      throw new DocumentStoreError(`cannot read ${this.description}`);
    }
    if ((mode & 0o077) !== 0) {
      throw new DocumentStoreError(`${this.description} is readable by other users: run chmod 600 on it`);
    }
    return readFile(this.path, 'utf8');
  }

  async write(text: string): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    const temporary = `${this.path}.${process.pid}.${Date.now()}.tmp`;
    const handle = await open(temporary, 'wx', 0o600);
    try {
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await rename(temporary, this.path);
    } catch (error) {
      await unlink(temporary).catch(() => undefined);
      throw error;
    }
  }
}

export interface SecretOptions extends AwsEndpointOptions {
  readonly secretId: string;
  /** KMS key for the secret itself when it is created; the account's default key otherwise. */
  readonly kmsKeyId?: string | undefined;
  readonly purpose: string;
}

export class SecretsManagerSecret implements TextDocumentStore {
  readonly description: string;
  private readonly client: SecretsManagerClient;

  constructor(private readonly options: SecretOptions) {
    this.description = `Secrets Manager secret ${options.secretId}`;
    this.client = new SecretsManagerClient(awsClientConfig(options));
  }

  async read(): Promise<string | undefined> {
    try {
      const response = await this.client.send(new GetSecretValueCommand({ SecretId: this.options.secretId }));
      if (response.SecretString === undefined) throw new DocumentStoreError(`${this.description} has no string value`);
      return response.SecretString;
    } catch (error) {
      if (error instanceof ResourceNotFoundException) return undefined;
      throw storeFailure(`cannot read ${this.description}`, error);
    }
  }

  async write(text: string): Promise<void> {
    try {
      await this.client.send(new PutSecretValueCommand({ SecretId: this.options.secretId, SecretString: text }));
      return;
    } catch (error) {
      if (!(error instanceof ResourceNotFoundException)) throw storeFailure(`cannot write ${this.description}`, error);
    }
    try {
      await this.client.send(
        new CreateSecretCommand({
          Name: this.options.secretId,
          SecretString: text,
          Description: this.options.purpose,
          ...(this.options.kmsKeyId ? { KmsKeyId: this.options.kmsKeyId } : {}),
        }),
      );
    } catch (error) {
      throw storeFailure(`cannot create ${this.description}`, error);
    }
  }
}
