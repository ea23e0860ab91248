/**
 * The keyring in memory: every loaded version with the keys derived from its 64-byte root,
 * and the per-context state derived from those keys (AES-SIV header state, FF1 instance),
 * computed once and reused for every batch. Versions imported from the AWS sample are held apart (by the contexts
 * they were bound to): they are none of `active`, `readable` or `lookup`, so nothing pseudonymizes with them.
 *
 * Derivation: HKDF-SHA256 (RFC 5869) with a distinct `info` per primitive, so one root key
 * serves AES-SIV, HMAC and FF1 without any two sharing key bytes.
 */
import { createHmac, hkdfSync } from 'node:crypto';
import { KeyringError } from '../errors.ts';
import { AesSiv } from '../engine/siv.ts';
import { Ff1Text } from '../engine/ff1.ts';
import { KeyedHash } from '../engine/keyedHash.ts';
import { AwsSampleKey } from '../engine/legacyAwsSample.ts';
import type { KeyState, KeyVersionMaterial, LegacyAwsSampleVersion } from '../types/keyring.ts';

const INFO_PREFIX = 'pseudonymization-platform/v1/';
/** Contexts are bounded by policy, but an open default policy admits any: cap the per-context caches. */
const MAX_CACHED_CONTEXTS = 10_000;

export function deriveKey(root: Uint8Array, purpose: string, length: number): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', root, new Uint8Array(0), INFO_PREFIX + purpose, length));
}

export class KeyVersion {
  readonly version: number;
  state: KeyState;
  readonly siv: AesSiv;
  private readonly hmacKey: Uint8Array;
  private readonly ff1Key: Uint8Array;
  private readonly sessionTokenKey: Uint8Array;
  private readonly headerStates = new Map<string, Uint8Array>();
  private readonly ff1ByContext = new Map<string, Ff1Text>();
  private readonly keyedHashByContext = new Map<string, KeyedHash>();
  private destroyed = false;

  constructor(version: number, state: KeyState, root: Uint8Array) {
    this.version = version;
    this.state = state;
    const sivKey = deriveKey(root, 'aes-siv-512', 64);
    this.siv = new AesSiv(sivKey);
    sivKey.fill(0);
    this.hmacKey = deriveKey(root, 'hmac-sha256', 32);
    this.ff1Key = deriveKey(root, 'ff1-aes-256', 32);
    this.sessionTokenKey = deriveKey(root, 'session-token-hs256', 32);
  }

  /** The HMAC key that signs people's session tokens made under this version. */
  sessionKey(): Uint8Array {
    this.assertUsable();
    return this.sessionTokenKey;
  }

  /** S2V state for the context as the single associated-data component. */
  headerState(context: string): Uint8Array {
    this.assertUsable();
    let state = this.headerStates.get(context);
    if (!state) {
      if (this.headerStates.size >= MAX_CACHED_CONTEXTS) clearZeroed(this.headerStates, (dropped) => dropped.fill(0));
      state = this.siv.headerState([Buffer.from(context, 'utf8')]);
      this.headerStates.set(context, state);
    }
    return state;
  }

  /** HMAC-SHA256 over context || 0x00 || value; contexts cannot contain NUL, so the input is unambiguous. */
  hmac(context: string, value: Uint8Array): Buffer {
    this.assertUsable();
    return createHmac('sha256', this.hmacKey).update(context, 'utf8').update(NUL).update(value).digest();
  }

  /** HMAC-SHA256 over context || 0x00 || value for whole batches, its key and context states computed once. */
  keyedHash(context: string): KeyedHash {
    this.assertUsable();
    let hash = this.keyedHashByContext.get(context);
    if (!hash) {
      // Plainly emptied: a KeyedHash holds the version's own key (shared, zeroed by destroy() below) and a context prefix.
      if (this.keyedHashByContext.size >= MAX_CACHED_CONTEXTS) this.keyedHashByContext.clear();
      hash = new KeyedHash(this.hmacKey, Buffer.concat([Buffer.from(context, 'utf8'), NUL]));
      this.keyedHashByContext.set(context, hash);
    }
    return hash;
  }

  ff1(context: string, alphabet: string): Ff1Text {
    this.assertUsable();
    const cacheKey = `${alphabet}\u0000${context}`;
    let cipher = this.ff1ByContext.get(cacheKey);
    if (!cipher) {
      if (this.ff1ByContext.size >= MAX_CACHED_CONTEXTS) clearZeroed(this.ff1ByContext, (dropped) => { dropped.destroy(); });
      cipher = new Ff1Text(alphabet, this.ff1Key, Buffer.from(context, 'utf8'));
      this.ff1ByContext.set(cacheKey, cipher);
    }
    return cipher;
  }

  /** Zeroes what this process holds of the key. OpenSSL's copies go with the cipher objects. */
  destroy(): void {
    this.destroyed = true;
    this.state = 'destroyed';
    this.hmacKey.fill(0);
    this.ff1Key.fill(0);
    this.sessionTokenKey.fill(0);
    this.siv.destroy();
    clearZeroed(this.headerStates, (state) => state.fill(0));
    clearZeroed(this.ff1ByContext, (cipher) => { cipher.destroy(); });
    clearZeroed(this.keyedHashByContext, (hash) => { hash.destroy(); });
  }

  private assertUsable(): void {
    if (this.destroyed) throw new KeyringError(`key version ${this.version} is destroyed`);
  }
}

const NUL = new Uint8Array([0]);

export type VersionLookup = { kind: 'usable'; key: KeyVersion } | { kind: 'destroyed' } | { kind: 'unknown' };

/** The AWS sample keys bound to one context: the live ones, and whether one bound to it was destroyed. */
export interface LegacyKeys {
  readonly keys: readonly AwsSampleKey[];
  readonly destroyed: boolean;
}

const NO_LEGACY_KEYS: LegacyKeys = { keys: [], destroyed: false };
type LegacyEntry = KeyVersionMaterial & { legacy: LegacyAwsSampleVersion };

export class Keyring {
  private readonly versions = new Map<number, KeyVersion>();
  private readonly destroyedVersions = new Set<number>();
  private readonly legacyVersions = new Map<number, AwsSampleKey>();
  private legacyByContext = new Map<string, LegacyKeys>();
  private activeKey: KeyVersion | undefined;
  /** Increases whenever a state changes, so caches built on the old state can be dropped. */
  generation = 0;

  get loaded(): boolean {
    return this.activeKey !== undefined;
  }

  active(): KeyVersion {
    if (!this.activeKey) throw new KeyringError('no active key version is loaded', 'keyring-unavailable');
    return this.activeKey;
  }

  /** Every version that can still transform values (active and decrypt-only), oldest first. */
  readable(): KeyVersion[] {
    return [...this.versions.values()].sort((a, b) => a.version - b.version);
  }

  lookup(version: number): VersionLookup {
    const key = this.versions.get(version);
    if (key) return { kind: 'usable', key };
    return this.destroyedVersions.has(version) ? { kind: 'destroyed' } : { kind: 'unknown' };
  }

  /** The AWS sample keys imported for `context` (none for most contexts). */
  legacyFor(context: string): LegacyKeys {
    return this.legacyByContext.get(context) ?? NO_LEGACY_KEYS;
  }

  /** Brings the keyring to the loaded state: new versions derived, states updated, destroyed ones zeroed. */
  apply(loaded: readonly KeyVersionMaterial[]): void {
    let changed = false;
    const seen = new Set<number>();
    let active: KeyVersion | undefined;
    const legacyEntries: LegacyEntry[] = [];
    for (const entry of loaded) {
      seen.add(entry.version);
      if (entry.legacy) {
        legacyEntries.push({ ...entry, legacy: entry.legacy });
        continue;
      }
      const existing = this.versions.get(entry.version);
      if (entry.state === 'destroyed' || !entry.material) {
        if (existing) {
          existing.destroy();
          this.versions.delete(entry.version);
          changed = true;
        }
        this.destroyedVersions.add(entry.version);
        entry.material?.fill(0);
        continue;
      }
      if (existing) {
        if (existing.state !== entry.state) changed = true;
        existing.state = entry.state;
        entry.material.fill(0);
        if (entry.state === 'active') active = existing;
        continue;
      }
      const key = new KeyVersion(entry.version, entry.state, entry.material);
      entry.material.fill(0);
      this.versions.set(entry.version, key);
      changed = true;
      if (entry.state === 'active') active = key;
    }
    for (const [version, key] of this.versions) {
      if (!seen.has(version)) {
        key.destroy();
        this.versions.delete(version);
        changed = true;
      }
    }
    if (this.applyLegacy(legacyEntries)) changed = true;
    if (!active) throw new KeyringError('the loaded keyring has no active version', 'keyring-unavailable');
    if (active !== this.activeKey) changed = true;
    this.activeKey = active;
    if (changed) this.generation++;
  }

  /** The imported AWS sample versions to the loaded state, and the per-context index rebuilt; true when it changed. */
  private applyLegacy(entries: readonly LegacyEntry[]): boolean {
    let changed = false;
    const live = new Set<number>();
    const byContext = new Map<string, { keys: AwsSampleKey[]; destroyed: boolean }>();
    const bound = (context: string): { keys: AwsSampleKey[]; destroyed: boolean } => {
      let keys = byContext.get(context);
      if (!keys) byContext.set(context, (keys = { keys: [], destroyed: false }));
      return keys;
    };
    for (const entry of entries) {
      const { legacy } = entry;
      if (entry.state === 'destroyed' || !entry.material) {
        entry.material?.fill(0);
        for (const context of legacy.contexts) bound(context).destroyed = true;
        continue;
      }
      live.add(entry.version);
      let key = this.legacyVersions.get(entry.version);
      if (!key) {
        key = new AwsSampleKey(entry.version, legacy.contexts, entry.material, legacy.nonceStrPos, legacy.nonceEndPos);
        this.legacyVersions.set(entry.version, key);
        changed = true;
      }
      entry.material.fill(0);
      for (const context of legacy.contexts) bound(context).keys.push(key);
    }
    for (const [version, key] of this.legacyVersions) {
      if (!live.has(version)) {
        key.destroy();
        this.legacyVersions.delete(version);
        changed = true;
      }
    }
    this.legacyByContext = byContext;
    return changed;
  }

  /** Zeroes every key, for shutdown. */
  close(): void {
    for (const key of this.versions.values()) key.destroy();
    this.versions.clear();
    for (const key of this.legacyVersions.values()) key.destroy();
    this.legacyVersions.clear();
    this.legacyByContext = new Map();
    this.activeKey = undefined;
  }
}

/**
 * Empties a per-context cache after zeroing what each entry holds of the key (`zero`): a context cache that fills up
 * is emptied this way too, not only on destroy(), so an evicted cipher leaves no key copy behind. Every entry is used
 * synchronously right after it is looked up, so none is in use when the cache is emptied.
 */
function clearZeroed<T>(cache: Map<string, T>, zero: (entry: T) => void): void {
  for (const entry of cache.values()) zero(entry);
  cache.clear();
}
