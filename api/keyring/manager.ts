/**
 * Keyring lifecycle: create, rotate, destroy, list, load, over any document store and key wrapper.
 *
 * Rules: exactly one active version once created; rotate makes a new active version and turns
 * the old one decrypt-only; destroy removes a non-active version's key for good (crypto-shredding:
 * its pseudonyms can never be reidentified again). Version numbers are never reused. A version imported from the AWS
 * sample's secret (importAwsSample) is decrypt-only from the start and bound to the contexts it served.
 */
import { z } from 'zod';
import { DocumentStoreError, KeyringError } from '../errors.ts';
import type { TextDocumentStore } from '../storage/documents.ts';
import { AWS_SAMPLE_KEY_BYTES, type AwsSampleSecret } from '../engine/legacyAwsSample.ts';
import type { KeyringDocument, KeyringEntry, KeyVersionInfo, KeyVersionMaterial, KeyWrapper } from '../types/keyring.ts';

export const KEY_MATERIAL_BYTES = 64;

export class KeyringManager {
  constructor(
    private readonly documents: TextDocumentStore,
    private readonly wrapper: KeyWrapper,
    readonly name: string,
  ) {}

  get description(): string {
    return this.documents.description;
  }

  async exists(): Promise<boolean> {
    return (await this.readText()) !== undefined;
  }

  /** The store's failure named as the keyring's: the answer says what could not be read. */
  private async readText(): Promise<string | undefined> {
    try {
      return await this.documents.read();
    } catch (error) {
      throw error instanceof DocumentStoreError ? new KeyringError(`the keyring: ${error.message}`, 'keyring-unavailable') : error;
    }
  }

  /**
   * Creates the keyring with version 1 active. Refuses when one exists, so keys are never overwritten. Callers
   * decide when a new keyring is right: the admin CLI's `keys create`, or a first start with no other state (bootstrap.ts).
   */
  async create(): Promise<KeyVersionInfo[]> {
    if (await this.exists()) throw new KeyringError(`a keyring already exists at ${this.description}`);
    const { material, stored } = await this.wrapper.generate(this.name, 1);
    material.fill(0);
    const document: KeyringDocument = {
      format: 'pseudonymization-keyring/v1',
      name: this.name,
      versions: [{ version: 1, state: 'active', createdAt: new Date().toISOString(), key: stored }],
    };
    await this.save(document);
    return listing(document);
  }

  async rotate(): Promise<KeyVersionInfo[]> {
    const document = await this.require();
    const next = Math.max(...document.versions.map((v) => v.version)) + 1;
    const { material, stored } = await this.wrapper.generate(this.name, next);
    material.fill(0);
    for (const entry of document.versions) if (entry.state === 'active') entry.state = 'decrypt-only';
    document.versions.push({ version: next, state: 'active', createdAt: new Date().toISOString(), key: stored });
    await this.save(document);
    return listing(document);
  }

  /**
   * Adds the AWS sample's key as a new decrypt-only version bound to `contexts` (never active, never used to
   * pseudonymize), its key stored like every version's. The secret's material is zeroed here.
   */
  async importAwsSample(secret: AwsSampleSecret, contexts: readonly string[]): Promise<KeyVersionInfo[]> {
    try {
      if (contexts.length === 0) throw new KeyringError('an imported AWS sample key needs the contexts it served');
      const document = await this.require();
      const next = Math.max(...document.versions.map((v) => v.version)) + 1;
      const stored = await this.wrapper.wrap(this.name, next, secret.material);
      document.versions.push({
        version: next,
        state: 'decrypt-only',
        createdAt: new Date().toISOString(),
        key: stored,
        legacy: { kind: 'legacy-aws-sample', contexts: [...new Set(contexts)], nonceStrPos: secret.nonceStrPos, nonceEndPos: secret.nonceEndPos },
      });
      await this.save(document);
      return listing(document);
    } finally {
      secret.material.fill(0);
    }
  }

  async destroy(version: number): Promise<KeyVersionInfo[]> {
    const document = await this.require();
    const entry = document.versions.find((v) => v.version === version);
    if (!entry) throw new KeyringError(`key version ${version} does not exist`);
    if (entry.state === 'active') throw new KeyringError(`key version ${version} is active: rotate first, then destroy it`);
    if (entry.state === 'destroyed') return listing(document);
    entry.state = 'destroyed';
    entry.destroyedAt = new Date().toISOString();
    delete entry.key;
    await this.save(document);
    // A store may keep the previous copy of the document (Secrets Manager labels it AWSPREVIOUS).
    // Writing once more leaves no labelled copy that still holds the destroyed key.
    await this.save(document);
    return listing(document);
  }

  async list(): Promise<KeyVersionInfo[]> {
    return listing(await this.require());
  }

  /** Every version with its key material (none for destroyed versions). */
  async load(): Promise<KeyVersionMaterial[]> {
    const document = await this.require();
    if (document.name !== this.name) {
      throw new KeyringError(`the keyring at ${this.description} is named "${document.name}", expected "${this.name}"`, 'keyring-unavailable');
    }
    this.wrapper.retain(new Set(document.versions.map((v) => v.key).filter((k): k is string => k !== undefined)));
    const out: KeyVersionMaterial[] = [];
    for (const entry of document.versions) {
      const info = infoOf(entry);
      if (entry.state === 'destroyed' || entry.key === undefined) {
        out.push(info);
        continue;
      }
      const material = await this.wrapper.open(this.name, entry);
      const expected = entry.legacy ? material.length > AWS_SAMPLE_KEY_BYTES : material.length === KEY_MATERIAL_BYTES;
      if (!expected) throw new KeyringError(`key version ${entry.version} has the wrong length`, 'keyring-unavailable');
      out.push({ ...info, material });
    }
    return out;
  }

  private async save(document: KeyringDocument): Promise<void> {
    try {
      await this.documents.write(JSON.stringify(document, null, 2) + '\n');
    } catch (error) {
      throw error instanceof DocumentStoreError ? new KeyringError(`the keyring: ${error.message}`, 'keyring-unavailable') : error;
    }
  }

  private async require(): Promise<KeyringDocument> {
    const text = await this.readText();
    if (text === undefined) throw new KeyringError(`no keyring at ${this.description}: create one first`, 'keyring-unavailable');
    return parseKeyringDocument(text, this.description);
  }
}

function listing(document: KeyringDocument): KeyVersionInfo[] {
  return document.versions.map(infoOf);
}

/** A version as listings show it: everything but its stored key. */
function infoOf(entry: KeyringEntry): KeyVersionInfo {
  const { version, state, createdAt, destroyedAt, legacy } = entry;
  return { version, state, createdAt, ...(destroyedAt === undefined ? {} : { destroyedAt }), ...(legacy === undefined ? {} : { legacy }) };
}

const entrySchema = z.object({
  version: z.number().int().positive(),
  state: z.enum(['active', 'decrypt-only', 'destroyed']),
  createdAt: z.string(),
  destroyedAt: z.string().optional(),
  key: z.string().optional(),
  legacy: z
    .object({
      kind: z.literal('legacy-aws-sample'),
      contexts: z.array(z.string().min(1)).min(1),
      nonceStrPos: z.number().int().nonnegative(),
      nonceEndPos: z.number().int().positive(),
    })
    .strict()
    .optional(),
});
const documentSchema = z.object({
  format: z.literal('pseudonymization-keyring/v1'),
  name: z.string().min(1),
  versions: z.array(entrySchema).min(1),
});

/** Parses a stored keyring document; a damaged one is an error that says where, never what it held. */
export function parseKeyringDocument(text: string, where: string): KeyringDocument {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new KeyringError(`the keyring at ${where} is not valid JSON`, 'keyring-unavailable');
  }
  const parsed = documentSchema.safeParse(json);
  if (!parsed.success) throw new KeyringError(`the keyring at ${where} does not have the expected shape`, 'keyring-unavailable');
  const active = parsed.data.versions.filter((v) => v.state === 'active').length;
  if (active !== 1) throw new KeyringError(`the keyring at ${where} must have exactly one active version, has ${active}`, 'keyring-unavailable');
  if (parsed.data.versions.some((v) => v.legacy && v.state === 'active')) throw new KeyringError(`the keyring at ${where} has an imported AWS sample version marked active`, 'keyring-unavailable');
  return parsed.data;
}
