/** Keyring types shared by the stores, the manager, the CLI and the service. */

export type KeyState = 'active' | 'decrypt-only' | 'destroyed';

/**
 * A version imported from the AWS sample service's secret (`keys import-aws-sample`): decrypt-only, never active,
 * read only for the contexts it served. Its key is the sample's AES key ‖ HMAC key, stored like any version's.
 */
export interface LegacyAwsSampleVersion {
  kind: 'legacy-aws-sample';
  contexts: string[];
  nonceStrPos: number;
  nonceEndPos: number;
}

/** One key version as stored: `key` is the stored form (plain base64 locally, KMS ciphertext in AWS). */
export interface KeyringEntry {
  version: number;
  state: KeyState;
  createdAt: string;
  destroyedAt?: string | undefined;
  key?: string | undefined;
  legacy?: LegacyAwsSampleVersion | undefined;
}

export interface KeyringDocument {
  format: 'pseudonymization-keyring/v1';
  name: string;
  versions: KeyringEntry[];
}

/** What a listing shows: never the key. */
export type KeyVersionInfo = Omit<KeyringEntry, 'key'>;

/** A loaded version: 64 bytes of root key material, absent once destroyed. */
export interface KeyVersionMaterial extends KeyVersionInfo {
  material?: Uint8Array | undefined;
}

/**
 * How a version's key is kept in the keyring document: plain (the local embedded default) or
 * wrapped by KMS (production). Where the document lives is a TextDocumentStore.
 */
export interface KeyWrapper {
  /** Fresh 64-byte key material for a new version, and its stored form. */
  generate(keyringName: string, version: number): Promise<{ material: Uint8Array; stored: string }>;
  /** The stored form of given key material (an imported version's). */
  wrap(keyringName: string, version: number, material: Uint8Array): Promise<string>;
  /** Key material from its stored form. */
  open(keyringName: string, entry: KeyringEntry): Promise<Uint8Array>;
  /** Forget cached key material of versions no longer stored. */
  retain(storedKeys: ReadonlySet<string>): void;
}
