/** Keyring types shared by the stores, the manager, the CLI and the service. */

export type KeyState = 'active' | 'decrypt-only' | 'destroyed';

/** One key version as stored: `key` is the stored form (plain base64 locally, KMS ciphertext in AWS). */
export interface KeyringEntry {
  version: number;
  state: KeyState;
  createdAt: string;
  destroyedAt?: string | undefined;
  key?: string | undefined;
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
 * Where a keyring document lives and how its keys are wrapped. The lifecycle rules
 * (create, rotate, destroy) are written once in KeyringManager over this interface.
 */
export interface KeyringStore {
  /** Says where the keyring is, for logs and errors; holds no secret. */
  readonly description: string;
  read(): Promise<KeyringDocument | undefined>;
  write(document: KeyringDocument): Promise<void>;
  /** Fresh key material for a new version, and its stored form. */
  generate(name: string, version: number): Promise<{ material: Uint8Array; stored: string }>;
  /** Key material from its stored form. */
  open(name: string, entry: KeyringEntry): Promise<Uint8Array>;
  /**
   * Called after a version was destroyed: make sure no older stored copy of the document that
   * still holds its key stays current (Secrets Manager keeps the previous secret version).
   */
  forgetPreviousCopies(document: KeyringDocument): Promise<void>;
}
