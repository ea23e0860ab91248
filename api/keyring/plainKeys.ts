/**
 * Keys stored as they are (base64) in the keyring document: the embedded default, for a single
 * machine where the document is a 0600 file. Production uses KmsWrappedKeys.
 */
import { randomBytes } from 'node:crypto';
import type { KeyringEntry, KeyWrapper } from '../types/keyring.ts';
import { KEY_MATERIAL_BYTES } from './manager.ts';

export class PlainKeys implements KeyWrapper {
  generate(): Promise<{ material: Uint8Array; stored: string }> {
    const material = new Uint8Array(randomBytes(KEY_MATERIAL_BYTES));
    return Promise.resolve({ material, stored: Buffer.from(material).toString('base64') });
  }

  wrap(_keyringName: string, _version: number, material: Uint8Array): Promise<string> {
    return Promise.resolve(Buffer.from(material).toString('base64'));
  }

  open(_keyringName: string, entry: KeyringEntry): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(Buffer.from(entry.key ?? '', 'base64')));
  }

  retain(): void {
    // Plain keys are not cached here: nothing to forget.
  }
}
