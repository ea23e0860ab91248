/**
 * The embedded default keyring: a JSON file with mode 0600 in the data folder, written
 * atomically (temporary file, fsync, rename) so a crash never leaves half a keyring.
 * Keys are stored unwrapped: this is for a single machine, not for production in AWS.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { KeyringError } from '../errors.ts';
import type { KeyringDocument, KeyringEntry, KeyringStore } from '../types/keyring.ts';
import { KEY_MATERIAL_BYTES, parseKeyringDocument } from './manager.ts';

export class LocalFileKeyringStore implements KeyringStore {
  readonly description: string;

  constructor(private readonly path: string) {
    this.description = `local file ${path}`;
  }

  async read(): Promise<KeyringDocument | undefined> {
    let mode: number;
    try {
      mode = (await stat(this.path)).mode;
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw new KeyringError(`cannot read the keyring at ${this.description}`, 'keyring-unavailable');
    }
    if ((mode & 0o077) !== 0) {
      throw new KeyringError(`the keyring at ${this.description} is readable by other users: run chmod 600 on it`, 'keyring-unavailable');
    }
    return parseKeyringDocument(await readFile(this.path, 'utf8'), this.description);
  }

  async write(document: KeyringDocument): Promise<void> {
    await writePrivateFile(this.path, JSON.stringify(document, null, 2) + '\n');
  }

  async generate(): Promise<{ material: Uint8Array; stored: string }> {
    const material = new Uint8Array(randomBytes(KEY_MATERIAL_BYTES));
    return { material, stored: Buffer.from(material).toString('base64') };
  }

  /** The atomic rename already replaced the only copy. */
  async forgetPreviousCopies(): Promise<void> {}

  async open(_name: string, entry: KeyringEntry): Promise<Uint8Array> {
    return new Uint8Array(Buffer.from(entry.key ?? '', 'base64'));
  }
}

/** Writes a file only its owner can read, atomically; the folder is created with mode 0700. */
export async function writePrivateFile(path: string, content: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temporary = `${path}.${process.pid}.${Date.now()}.tmp`;
  const handle = await open(temporary, 'wx', 0o600);
  try {
    await handle.writeFile(content, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
}

function isMissing(error: unknown): boolean {
  return typeof error === 'object' && error !== null && 'code' in error && error.code === 'ENOENT';
}
