/**
 * API keys for machines (Spark jobs, producers). A key is `pk_<id>_<secret>`: the 12-hex id is
 * public and finds the record, the 256-bit secret is checked against its SHA-256 in constant time.
 * A slow password hash is not needed: the secret is random, not chosen by a person.
 *
 * Records live in a JSON document (a 0600 file or a Secrets Manager secret) that the service
 * re-reads every few seconds, so a revocation takes effect without a restart.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { ApiKeyRegistryError, AuthError, DocumentStoreError, RequestError } from '../errors.ts';
import type { TextDocumentStore } from '../storage/documents.ts';

import { ROLES, type Principal, type Role } from './roles.ts';

export { ROLES, type Principal, type Role };

const recordSchema = z.object({
  id: z.string().regex(/^[0-9a-f]{12}$/),
  name: z.string().min(1).max(100),
  roles: z.array(z.enum(ROLES)).min(1),
  contexts: z.array(z.string()).nullable().default(null),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  createdAt: z.string(),
  revokedAt: z.string().nullable().default(null),
});
const documentSchema = z.object({ format: z.literal('pseudonymization-api-keys/v1'), keys: z.array(recordSchema) });

export type ApiKeyRecord = z.infer<typeof recordSchema>;
export type ApiKeyListing = Omit<ApiKeyRecord, 'sha256'>;

const UNKNOWN_ID_RELOAD_MS = 1000;
const KEY_PATTERN = /^pk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

export class ApiKeyRegistry {
  constructor(private readonly documents: TextDocumentStore) {}

  get description(): string {
    return this.documents.description;
  }

  async read(): Promise<ApiKeyRecord[]> {
    const text = await this.readText();
    if (text === undefined) return [];
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new ApiKeyRegistryError(`the API key registry at ${this.description} is not valid JSON`);
    }
    const parsed = documentSchema.safeParse(json);
    if (!parsed.success) throw new ApiKeyRegistryError(`the API key registry at ${this.description} does not have the expected shape`);
    return parsed.data.keys;
  }

  /** The store's failure named as the registry's: the answer says what could not be read. */
  private async readText(): Promise<string | undefined> {
    try {
      return await this.documents.read();
    } catch (error) {
      throw error instanceof DocumentStoreError ? new ApiKeyRegistryError(`the API key registry: ${error.message}`) : error;
    }
  }

  async exists(): Promise<boolean> {
    return (await this.readText()) !== undefined;
  }

  /** Creates a key and returns it. The secret exists only in the return value: store it, it is not kept. */
  async create(name: string, roles: readonly Role[], contexts: readonly string[] | undefined): Promise<{ key: string; record: ApiKeyListing }> {
    if (roles.length === 0) throw new RequestError('validation-failed', 'an API key needs at least one role');
    const records = await this.read();
    const id = randomBytes(6).toString('hex');
    const key = `pk_${id}_${randomBytes(32).toString('base64url')}`;
    const record: ApiKeyRecord = {
      id,
      name,
      roles: [...new Set(roles)],
      contexts: contexts ? [...new Set(contexts)] : null,
      sha256: sha256(key).toString('hex'),
      createdAt: new Date().toISOString(),
      revokedAt: null,
    };
    await this.save([...records, record]);
    const { sha256: _hash, ...listing } = record;
    return { key, record: listing };
  }

  async list(): Promise<ApiKeyListing[]> {
    return (await this.read()).map(({ sha256: _hash, ...listing }) => listing);
  }

  async revoke(id: string): Promise<ApiKeyListing> {
    const records = await this.read();
    const record = records.find((r) => r.id === id);
    if (!record) throw new RequestError('not-found', `no API key with id ${id}`);
    record.revokedAt ??= new Date().toISOString();
    await this.save(records);
    const { sha256: _hash, ...listing } = record;
    return listing;
  }

  private async save(records: ApiKeyRecord[]): Promise<void> {
    await this.documents.write(JSON.stringify({ format: 'pseudonymization-api-keys/v1', keys: records }, null, 2) + '\n');
  }
}

/** Verifies presented keys against the registry, re-reading it at most every `refreshMs`. */
export class ApiKeyAuthenticator {
  private byId = new Map<string, { record: ApiKeyRecord; hash: Buffer; principal: Principal }>();
  private loadedAt = -Infinity;
  private reloading: Promise<void> | undefined;
  private readonly decoy = sha256('decoy');

  constructor(
    private readonly registry: ApiKeyRegistry,
    private readonly refreshMs: number,
    /** Told when a refresh fails after a first successful load; the loaded registry stays in use. */
    private readonly onStaleRegistry: (error: unknown) => void = () => undefined,
  ) {}

  async reload(): Promise<void> {
    const records = await this.registry.read();
    this.byId = new Map(
      records.map((record) => [
        record.id,
        {
          record,
          hash: Buffer.from(record.sha256, 'hex'),
          principal: {
            kind: 'api-key' as const,
            id: record.id,
            name: record.name,
            roles: new Set(record.roles),
            contexts: record.contexts ? new Set(record.contexts) : undefined,
          },
        },
      ]),
    );
    this.loadedAt = Date.now();
  }

  /** The first load must succeed; a later failure keeps the loaded registry and tries again one period later. */
  private async refresh(): Promise<void> {
    try {
      await this.reload();
    } catch (error) {
      if (this.loadedAt === -Infinity) throw error;
      this.loadedAt = Date.now();
      this.onStaleRegistry(error);
    }
  }

  /** The principal for an `x-api-key` header value; 401 when it is missing, unknown, wrong or revoked. */
  async authenticate(presented: string | undefined): Promise<Principal> {
    if (Date.now() - this.loadedAt > this.refreshMs) {
      this.reloading ??= this.refresh().finally(() => {
        this.reloading = undefined;
      });
      // Wait for it: a revoked key must stop working within one refresh period.
      await this.reloading;
    }
    if (presented === undefined || presented === '') throw new AuthError('unauthenticated', 'an API key is required in the x-api-key header');
    const match = KEY_PATTERN.exec(presented);
    let entry = match ? this.byId.get(match[1]!) : undefined;
    // A key created a moment ago should work at once; random ids may trigger at most one read a second.
    if (match && !entry && Date.now() - this.loadedAt > UNKNOWN_ID_RELOAD_MS) {
      await this.refresh();
      entry = this.byId.get(match[1]!);
    }
    // Compare even when the id is unknown, so timing does not tell which ids exist.
    const equal = timingSafeEqual(sha256(presented), entry?.hash ?? this.decoy);
    if (!entry || !equal || entry.record.revokedAt !== null) throw new AuthError('unauthenticated', 'the API key is not valid');
    return entry.principal;
  }
}

