/**
 * Erasure at the service's edge: the composition root (service.ts) puts this between the routes and the
 * engine, which knows policies, keys and formats but nothing of ledgers.
 *
 * - Reidentify withholds a subject filed for erasure (per item `erased`), whatever token is presented:
 *   deterministic or randomized, under any key version, or the AWS sample's (a legacy version's). The decrypted
 *   value's deterministic pseudonyms under every readable version are looked up in the context's set of erased
 *   pseudonyms: a sample pseudonym has no version prefix, so its value's are always computed, inside the service.
 * - Pseudonymize and rewrap do not hand out a usable pseudonym for such a subject: its index is reported instead.
 * - Filing and the worker get a subject's pseudonyms under every readable key version from here.
 *
 * A packed batch (an Arrow column: UTF-8 bytes and offsets) is checked from its bytes: each pseudonym's fingerprint
 * (FNV-1a of its bytes) is looked up among the erased pseudonyms' fingerprints, and only a match becomes a string
 * for the exact lookup. Every value is looked up under every readable key version, as in the string path.
 *
 * The set of erased pseudonyms of each context is held in memory and read from the (asynchronous, possibly
 * remote) ledger at most every `cacheSeconds` (PSEUDO_ERASURE_CACHE_SECONDS): requests never wait for the
 * ledger while the set is fresh. After half the bound it is refreshed in the background; past the bound a
 * request waits for the refresh, and when the ledger cannot be read it fails with `ledger-unavailable` (503):
 * an answer is never given from a set older than the bound. A filing or a lift of suppression through this process
 * takes effect here at once, and in other processes at their next read (within the bound). Until a ledger read that
 * started after it has landed, this process applies its own event over what it read (a read may predate it); after
 * that the ledger decides, so a later lift or filing in another process is not masked here. A set read under an
 * earlier keyring generation is read again before it answers: after `keys destroy` the subject filed under the
 * destroyed version matches only the active version's pseudonym, which the ledger holds from before the destroy.
 */
import type { Nullable, PackedPseudonymizeResult, PackedReidentifyResult, PackedRewrapResult, PackedTexts, PseudonymEngine, PseudonymizeResult, ReidentifyResult, RewrapResult } from '../engine/engine.ts';
import { PlatformError } from '../errors.ts';
import type { Keyring } from '../keyring/keyring.ts';
import type { ErasureLedger, ErasureSubject } from './ledger.ts';
import { PACKED_HEADER_MODES, parsePseudonym, parsePseudonymHeadersPacked } from '../engine/pseudonymFormat.ts';

/** Pseudonymize with the indexes of values withheld because their subject's erasure was filed (null in `pseudonyms`). */
export interface SuppressedPseudonymizeResult extends PseudonymizeResult {
  readonly erased: number[];
  /** With `allVersions`: per value, its deterministic pseudonyms under every readable version, newest first (null for a null or withheld value). */
  readonly allVersions?: Nullable<string[]>[];
}

export interface PseudonymizeOptions {
  readonly deterministic: boolean;
  /** Also answer every readable version's pseudonym of each value (for queries over data not yet re-keyed). */
  readonly allVersions?: boolean | undefined;
}

/** Pseudonymize of a packed batch, withheld values null (no bytes) and listed in `erased`. */
export interface SuppressedPackedPseudonymizeResult extends PackedPseudonymizeResult {
  readonly erased: number[];
}

/** Rewrap with the indexes of pseudonyms withheld because their subject's erasure was filed (null in `pseudonyms`, not in `errors`). */
export interface SuppressedRewrapResult extends RewrapResult {
  readonly erased: number[];
}

/** Rewrap of a packed batch, withheld pseudonyms null (no bytes) and listed in `erased` (not in `errors`). */
export interface SuppressedPackedRewrapResult extends PackedRewrapResult {
  readonly erased: number[];
}

/** What the routes call: the engine alone, or behind erasure suppression. */
export interface PseudonymOperations {
  pseudonymize(context: string, values: readonly Nullable<string>[], options: PseudonymizeOptions): Promise<SuppressedPseudonymizeResult>;
  /** `pseudonymize` of a packed batch, where `PseudonymEngine.takesPacked` (deterministic AES-SIV): the same answers, packed. */
  pseudonymizePacked(context: string, values: PackedTexts, options: { deterministic: boolean }): Promise<SuppressedPackedPseudonymizeResult>;
  reidentify(context: string, pseudonyms: readonly Nullable<string>[], options?: { keyVersion?: number | undefined }): Promise<ReidentifyResult>;
  rewrap(context: string, pseudonyms: readonly Nullable<string>[], options?: { keyVersion?: number | undefined }): Promise<SuppressedRewrapResult>;
  /** `reidentify` of a packed batch, where `PseudonymEngine.takesPackedTokens`: the same answers, the values' UTF-8 bytes packed. */
  reidentifyPacked(context: string, pseudonyms: PackedTexts): Promise<PackedReidentifyResult>;
  /** `rewrap` of a packed batch, where `PseudonymEngine.takesPackedTokens`: the same answers, packed. */
  rewrapPacked(context: string, pseudonyms: PackedTexts): Promise<SuppressedPackedRewrapResult>;
}

/** Without erasure configured: the engine as it is. */
export function engineOperations(engine: PseudonymEngine): PseudonymOperations {
  return {
    // A promise that rejects (not a synchronous throw) when the engine refuses, as the suppressing path does.
    pseudonymize: (context, values, options) =>
      new Promise((resolve) => {
        const result = engine.pseudonymize(context, values, options);
        resolve(options.allVersions ? { ...result, erased: [], allVersions: engine.pseudonymsInEveryVersion(context, values) } : { ...result, erased: [] });
      }),
    pseudonymizePacked: (context, values, options) =>
      new Promise((resolve) => {
        resolve({ ...engine.pseudonymizePacked(context, values, options), erased: [] });
      }),
    reidentify: (context, pseudonyms, options) =>
      new Promise((resolve) => {
        resolve(engine.reidentify(context, pseudonyms, options));
      }),
    rewrap: (context, pseudonyms, options) =>
      new Promise((resolve) => {
        resolve({ ...engine.rewrap(context, pseudonyms, options), erased: [] });
      }),
    reidentifyPacked: (context, pseudonyms) =>
      new Promise((resolve) => {
        resolve(engine.reidentifyPacked(context, pseudonyms));
      }),
    rewrapPacked: (context, pseudonyms) =>
      new Promise((resolve) => {
        resolve({ ...engine.rewrapPacked(context, pseudonyms), erased: [] });
      }),
  };
}

export interface SuppressionOptions {
  /** The oldest a context's set of erased pseudonyms may be when it answers a request, in seconds (0: read it every time). */
  readonly cacheSeconds: number;
  /** Milliseconds now; tests move the clock. */
  readonly now?: () => number;
}

/** A filing or a lift made through this process, and when (this process's clock, after the ledger committed it). */
interface LocalEvent {
  readonly kind: 'filed' | 'lifted';
  readonly at: number;
}

/** Ledger reads one answer makes while keyring refreshes keep landing during them (then ledger-unavailable). */
const MAX_READS_ACROSS_REFRESHES = 3;

interface CachedSet {
  readonly pseudonyms: Set<string>;
  /** `fingerprint` of every pseudonym in the set, and of some lifted since (a stale one only costs an exact lookup). */
  readonly fingerprints: Set<number>;
  readonly loadedAt: number;
  /**
   * The keyring's generation when the read started. A refresh may have dropped a version (keys destroy) whose
   * pseudonyms were all a subject matched here: the ledger holds the active version's by then (destroy covers
   * first), so a set from another generation is read again before it answers.
   */
  readonly generation: number;
}

export class ErasureSuppression implements PseudonymOperations {
  private readonly cache = new Map<string, CachedSet>();
  private readonly loading = new Map<string, { readonly generation: number; readonly set: Promise<CachedSet> }>();
  /** Per context, pseudonyms filed or lifted through this process, applied over ledger reads that may predate them. */
  private readonly happenedHere = new Map<string, Map<string, LocalEvent>>();
  private readonly now: () => number;
  /** Ledger reads that failed (background refreshes included), for the metrics. */
  refreshFailures = 0;

  constructor(
    private readonly ledger: ErasureLedger,
    private readonly engine: PseudonymEngine,
    private readonly keyring: Keyring,
    private readonly options: SuppressionOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /**
   * The deterministic pseudonyms of each value under every readable key version (oldest first): what an
   * erasure must look for, since data written before a rotation carries the older versions' pseudonyms. In a
   * context an AWS sample key is bound to, the sample's deterministic pseudonym comes first: tables not yet
   * migrated hold those.
   */
  pseudonymsInEveryVersion(context: string, values: readonly string[]): string[][] {
    const ours = this.engine.pseudonymsUnder(this.keyring.readable(), context, values);
    const legacy = this.keyring.legacyFor(context).keys;
    if (legacy.length === 0) return ours;
    return ours.map((pseudonyms, i) => [...legacy.map((key) => key.deterministicPseudonym(values[i]!)), ...pseudonyms]);
  }

  /** Reidentify without withholding: for the erasure core only, which must resolve a subject to erase it. */
  resolveForErasure(context: string, pseudonyms: readonly string[], keyVersion?: number): ReidentifyResult {
    return this.engine.reidentify(context, pseudonyms, { keyVersion });
  }

  /** A filing through this process: its subjects are withheld from now on, before the next ledger read. */
  noteFiled(subjects: readonly ErasureSubject[]): void {
    this.note('filed', subjects);
  }

  /** A lift through this process: its subjects are answered again from now on, before the next ledger read. */
  noteLifted(subjects: readonly ErasureSubject[]): void {
    this.note('lifted', subjects);
  }

  private note(kind: LocalEvent['kind'], subjects: readonly ErasureSubject[]): void {
    const at = this.now();
    for (const subject of subjects) {
      let here = this.happenedHere.get(subject.context);
      if (!here) this.happenedHere.set(subject.context, (here = new Map<string, LocalEvent>()));
      const cached = this.cache.get(subject.context);
      for (const pseudonym of subject.pseudonyms) {
        here.set(pseudonym, { kind, at });
        if (kind === 'filed') {
          cached?.pseudonyms.add(pseudonym);
          cached?.fingerprints.add(textFingerprint(pseudonym));
        } else cached?.pseudonyms.delete(pseudonym);
      }
    }
  }

  async reidentify(context: string, pseudonyms: readonly Nullable<string>[], options: { keyVersion?: number | undefined } = {}): Promise<ReidentifyResult> {
    const erased = await this.erasedPseudonyms(context);
    const result = this.engine.reidentify(context, pseudonyms, options);
    if (erased.size === 0) return result;
    const indexes = result.values.flatMap((value, i) => (value === null ? [] : [i]));
    // A deterministic token that decrypted is its value's pseudonym under its own version: when the whole batch
    // is of one such version (a table written under one key), look the tokens up as they are and compute only
    // the other readable versions' pseudonyms (a subject filed before that version existed has only those).
    const version = sharedDeterministicVersion(indexes.map((i) => pseudonyms[i]!));
    const computed = this.erasedAmong(context, erased, indexes.map((i) => result.values[i]!), version);
    const withheld = indexes.flatMap((index, k) => (computed.has(k) || (version !== undefined && erased.has(pseudonyms[index]!)) ? [k] : []));
    if (withheld.length === 0) return result;
    const values = [...result.values];
    const errors = [...result.errors];
    for (const k of withheld) {
      values[indexes[k]!] = null;
      errors.push({ index: indexes[k]!, reason: 'erased' });
    }
    errors.sort((a, b) => a.index - b.index);
    return { values, errors };
  }

  async pseudonymize(context: string, values: readonly Nullable<string>[], options: PseudonymizeOptions): Promise<SuppressedPseudonymizeResult> {
    const answer = await this.pseudonymizeWithholding(context, values, options);
    if (!options.allVersions) return answer;
    // Synchronous since the engine's pseudonymize: the same keyring, so the newest entry is the answer's own pseudonym.
    const withheld = new Set(answer.erased);
    return { ...answer, allVersions: this.engine.pseudonymsInEveryVersion(context, values.map((value, i) => (withheld.has(i) ? null : value))) };
  }

  /**
   * `pseudonymize` of a packed batch: the active version's answers are looked up from their bytes, and every other
   * readable version's deterministic pseudonyms of the values are computed packed and looked up the same way.
   */
  async pseudonymizePacked(context: string, values: PackedTexts, options: { deterministic: boolean }): Promise<SuppressedPackedPseudonymizeResult> {
    const erased = await this.erasedSet(context);
    const result = this.engine.pseudonymizePacked(context, values, options);
    if (erased.pseudonyms.size === 0) return { ...result, erased: [] };
    const withheld = new Set<number>();
    for (const key of this.keyring.readable()) {
      const under = key.version === result.keyVersion ? result.pseudonyms : this.engine.sivPseudonymsPacked(key, context, values);
      for (const index of erasedIndexes(erased, under)) withheld.add(index);
    }
    if (withheld.size === 0) return { ...result, erased: [] };
    const indexes = [...withheld].sort((a, b) => a - b);
    return { pseudonyms: withoutItems(result.pseudonyms, indexes), keyVersion: result.keyVersion, erased: indexes };
  }

  private async pseudonymizeWithholding(context: string, values: readonly Nullable<string>[], options: PseudonymizeOptions): Promise<SuppressedPseudonymizeResult> {
    const erased = await this.erasedPseudonyms(context);
    const result = this.engine.pseudonymize(context, values, options);
    if (erased.size === 0) return { ...result, erased: [] };
    const indexes = values.flatMap((value, i) => (value === null ? [] : [i]));
    // A deterministic answer is itself the value's pseudonym under the active version: look it up as it is,
    // and compute only the other readable versions' (a subject filed before a rotation has only those).
    const active = options.deterministic ? result.keyVersion : undefined;
    const computed = this.erasedAmong(context, erased, indexes.map((i) => values[i]!), active);
    const withheld = indexes.filter((index, k) => computed.has(k) || (active !== undefined && erased.has(result.pseudonyms[index]!)));
    if (withheld.length === 0) return { ...result, erased: [] };
    const pseudonyms = [...result.pseudonyms];
    for (const index of withheld) pseudonyms[index] = null;
    return { pseudonyms, keyVersion: result.keyVersion, erased: withheld };
  }

  /**
   * Rewrap that gives no pseudonym out for a subject filed for erasure (its index is listed in `erased`). A batch of
   * one version's deterministic tokens rewrapped to deterministic tokens is checked by looking both up as they are;
   * only versions other than those two need the values, which are then decrypted again here and never leave.
   */
  async rewrap(context: string, pseudonyms: readonly Nullable<string>[], options: { keyVersion?: number | undefined } = {}): Promise<SuppressedRewrapResult> {
    const erased = await this.erasedPseudonyms(context);
    const result = this.engine.rewrap(context, pseudonyms, options);
    const indexes = result.pseudonyms.flatMap((pseudonym, i) => (pseudonym === null ? [] : [i]));
    if (erased.size === 0 || indexes.length === 0) return { ...result, erased: [] };
    const inputs = indexes.map((i) => pseudonyms[i]!);
    const outputs = indexes.map((i) => result.pseudonyms[i]!);
    const inputVersion = sharedDeterministicVersion(inputs);
    const outputVersion = sharedDeterministicVersion(outputs);
    const others = this.keyring.readable().filter((key) => key.version !== inputVersion && key.version !== outputVersion);
    let computed = new Set<number>();
    if (others.length > 0) {
      // Synchronous since engine.rewrap: the same keys decrypt the same items, so every one of them has its value.
      const values = this.engine.reidentify(context, inputs, options).values.map((value) => value ?? '');
      const perValue = this.engine.pseudonymsUnder(others, context, values, { check: false });
      computed = new Set(perValue.flatMap((under, k) => (under.some((p) => erased.has(p)) ? [k] : [])));
    }
    const withheld = indexes.filter((_, k) => computed.has(k) || (inputVersion !== undefined && erased.has(inputs[k]!)) || (outputVersion !== undefined && erased.has(outputs[k]!)));
    if (withheld.length === 0) return { ...result, erased: [] };
    const rewrapped = [...result.pseudonyms];
    for (const index of withheld) rewrapped[index] = null;
    return { pseudonyms: rewrapped, keyVersion: result.keyVersion, errors: result.errors, erased: withheld };
  }

  /**
   * `reidentify` of a packed batch, withholding as `reidentify` does, from the bytes: the decrypted values' deterministic
   * pseudonyms are computed packed under every readable version and looked up by fingerprint (as `pseudonymizePacked`
   * does), but for the one version all answered tokens are deterministic pseudonyms of, if any: those tokens are looked
   * up as they are.
   */
  async reidentifyPacked(context: string, pseudonyms: PackedTexts): Promise<PackedReidentifyResult> {
    const erased = await this.erasedSet(context);
    const result = this.engine.reidentifyPacked(context, pseudonyms);
    if (erased.pseudonyms.size === 0) return result;
    const answered = { data: pseudonyms.data, offsets: pseudonyms.offsets, validity: result.values.validity };
    const version = sharedDeterministicVersionPacked(answered);
    const withheld = new Set(version === undefined ? [] : erasedIndexes(erased, answered));
    for (const key of this.keyring.readable()) {
      if (key.version === version) continue;
      for (const index of erasedIndexes(erased, this.engine.sivPseudonymsPacked(key, context, result.values))) withheld.add(index);
    }
    if (withheld.size === 0) return result;
    const indexes = [...withheld].sort((a, b) => a - b);
    const errors = [...result.errors, ...indexes.map((index) => ({ index, reason: 'erased' as const }))].sort((a, b) => a.index - b.index);
    return { values: withoutItems(result.values, indexes), errors };
  }

  /**
   * `rewrap` of a packed batch, withholding as `rewrap` does, from the bytes: inputs and outputs of a version all of them
   * are deterministic pseudonyms of are looked up as they are; other readable versions need the values, which are
   * decrypted again here (packed) and never leave.
   */
  async rewrapPacked(context: string, pseudonyms: PackedTexts): Promise<SuppressedPackedRewrapResult> {
    const erased = await this.erasedSet(context);
    const result = this.engine.rewrapPacked(context, pseudonyms);
    const outputs = result.pseudonyms;
    if (erased.pseudonyms.size === 0 || !hasPresentItem(outputs)) return { ...result, erased: [] };
    const inputs = { data: pseudonyms.data, offsets: pseudonyms.offsets, validity: outputs.validity };
    const inputVersion = sharedDeterministicVersionPacked(inputs);
    const outputVersion = sharedDeterministicVersionPacked(outputs);
    const withheld = new Set<number>();
    const others = this.keyring.readable().filter((key) => key.version !== inputVersion && key.version !== outputVersion);
    if (others.length > 0) {
      // Synchronous since engine.rewrapPacked: the same keys decrypt the same items, so every one of them has its value.
      const values = this.engine.reidentifyPacked(context, inputs).values;
      for (const key of others) for (const index of erasedIndexes(erased, this.engine.sivPseudonymsPacked(key, context, values))) withheld.add(index);
    }
    if (inputVersion !== undefined) for (const index of erasedIndexes(erased, inputs)) withheld.add(index);
    if (outputVersion !== undefined) for (const index of erasedIndexes(erased, outputs)) withheld.add(index);
    if (withheld.size === 0) return { ...result, erased: [] };
    const indexes = [...withheld].sort((a, b) => a - b);
    return { pseudonyms: withoutItems(outputs, indexes), keyVersion: result.keyVersion, errors: result.errors, erased: indexes };
  }

  /**
   * Positions (into `values`) of the values whose deterministic pseudonym under some readable key version
   * (but `skipVersion`, which the caller looks up itself) was filed for erasure: one encryption (batched) and
   * one set lookup per value and version.
   */
  private erasedAmong(context: string, erased: ReadonlySet<string>, values: readonly string[], skipVersion?: number): Set<number> {
    const keys = this.keyring.readable().filter((key) => key.version !== skipVersion);
    if (values.length === 0 || keys.length === 0) return new Set();
    const perValue = this.engine.pseudonymsUnder(keys, context, values, { check: false });
    return new Set(perValue.flatMap((pseudonyms, k) => (pseudonyms.some((p) => erased.has(p)) ? [k] : [])));
  }

  /** The context's set, from memory while fresh; otherwise read from the ledger (one read at a time per context). */
  private async erasedPseudonyms(context: string): Promise<ReadonlySet<string>> {
    return (await this.erasedSet(context)).pseudonyms;
  }

  private async erasedSet(context: string): Promise<CachedSet> {
    const cached = this.cache.get(context);
    const age = cached ? this.now() - cached.loadedAt : Number.POSITIVE_INFINITY;
    const bound = this.options.cacheSeconds * 1000;
    if (cached && age < bound && cached.generation === this.keyring.generation) {
      if (age >= bound / 2) this.load(context).catch(() => undefined); // refresh ahead; a failure counts, the bound still holds
      return cached;
    }
    // A keyring refresh landing during the read may have dropped a version the read predates the coverage of: read again.
    for (let reads = 1; reads <= MAX_READS_ACROSS_REFRESHES; reads++) {
      let loaded: CachedSet;
      try {
        loaded = await this.load(context);
      } catch {
        throw new PlatformError('ledger-unavailable', 'the erasure ledger cannot be read, and erased subjects must be withheld');
      }
      if (loaded.generation === this.keyring.generation) return loaded;
    }
    throw new PlatformError('ledger-unavailable', 'the keyring kept changing while the erasure ledger was read, and erased subjects must be withheld');
  }

  private load(context: string): Promise<CachedSet> {
    const generation = this.keyring.generation;
    const running = this.loading.get(context);
    if (running?.generation === generation) return running.set;
    const startedAt = this.now();
    const loading = this.ledger
      .erasedPseudonyms(context)
      .then((fromLedger) => {
        const pseudonyms = new Set(fromLedger);
        const here = this.happenedHere.get(context);
        for (const [pseudonym, event] of here ?? []) {
          // A read that started after the event includes it, and anything later from other processes: the ledger decides.
          if (event.at < startedAt) here?.delete(pseudonym);
          else if (event.kind === 'filed') pseudonyms.add(pseudonym);
          else pseudonyms.delete(pseudonym);
        }
        const fingerprints = new Set<number>();
        for (const pseudonym of pseudonyms) fingerprints.add(textFingerprint(pseudonym));
        const entry = { pseudonyms, fingerprints, loadedAt: startedAt, generation };
        // A read of an earlier generation landing after a later one's does not replace it.
        const newer = this.cache.get(context);
        if (!newer || newer.generation <= generation) this.cache.set(context, entry);
        return entry;
      })
      .catch((error: unknown) => {
        this.refreshFailures++;
        throw error;
      })
      .finally(() => {
        if (this.loading.get(context)?.set === loading) this.loading.delete(context);
      });
    this.loading.set(context, { generation, set: loading });
    return loading;
  }
}

/** The key version of these tokens when every one is a deterministic AES-SIV pseudonym of that one version. */
function sharedDeterministicVersion(tokens: readonly string[]): number | undefined {
  let version: number | undefined;
  for (const token of tokens) {
    const parsed = parsePseudonym(token);
    if (parsed?.mode !== 'deterministic' || (version !== undefined && parsed.version !== version)) return undefined;
    version = parsed.version;
  }
  return version;
}

/**
 * `sharedDeterministicVersion` of the present items of a packed batch, which are pseudonyms (tokens that were answered,
 * or a rewrap's output): their headers decide, as their payloads are canonical.
 */
function sharedDeterministicVersionPacked(items: PackedTexts): number | undefined {
  const { offsets, validity } = items;
  const headers = parsePseudonymHeadersPacked(items.data, offsets, validity);
  let version: number | undefined;
  for (let i = 0; i + 1 < offsets.length; i++) {
    if (validity && (validity[i >> 3]! & (1 << (i & 7))) === 0) continue;
    if (PACKED_HEADER_MODES[headers.modes[i]! - 1] !== 'deterministic' || (version !== undefined && headers.versions[i] !== version)) return undefined;
    version = headers.versions[i];
  }
  return version;
}

function hasPresentItem(items: PackedTexts): boolean {
  const count = items.offsets.length - 1;
  if (!items.validity) return count > 0;
  for (let i = 0; i < count; i++) if ((items.validity[i >> 3]! & (1 << (i & 7))) !== 0) return true;
  return false;
}

/** FNV-1a (32 bits) of `bytes[start, end)`: a cheap first look before an exact lookup. */
function fingerprint(bytes: Uint8Array, start: number, end: number): number {
  let hash = 0x811c9dc5;
  for (let i = start; i < end; i++) hash = Math.imul(hash ^ bytes[i]!, 0x01000193);
  return hash >>> 0;
}

function textFingerprint(text: string): number {
  const bytes = Buffer.from(text, 'utf8');
  return fingerprint(bytes, 0, bytes.length);
}

/** Indexes (ascending) of the non-null items of a packed batch that are in the erased set. */
function erasedIndexes(erased: CachedSet, items: PackedTexts): number[] {
  const { data, offsets, validity } = items;
  const found: number[] = [];
  for (let i = 0; i + 1 < offsets.length; i++) {
    if (validity && (validity[i >> 3]! & (1 << (i & 7))) === 0) continue;
    const start = offsets[i]!;
    const end = offsets[i + 1]!;
    if (!erased.fingerprints.has(fingerprint(data, start, end))) continue;
    if (erased.pseudonyms.has(Buffer.from(data.buffer, data.byteOffset + start, end - start).toString('utf8'))) found.push(i);
  }
  return found;
}

/** The batch with the items at `withheld` (ascending) made null and their bytes removed: nothing of them is answered. */
function withoutItems(items: PackedTexts, withheld: readonly number[]): PackedTexts {
  const count = items.offsets.length - 1;
  // Without a bitmap every item is present: bits past the last item stay clear, as Arrow writers leave them.
  const validity = items.validity ? Uint8Array.from(items.validity) : new Uint8Array(Math.ceil(count / 8)).fill(0xff);
  if (!items.validity && count % 8 !== 0) validity[validity.length - 1] = (1 << count % 8) - 1;
  const source = items.offsets;
  const offsets = new Int32Array(count + 1);
  const data = new Uint8Array(source[count]! - source[0]!);
  let at = 0;
  let from = 0;
  for (const index of [...withheld, count]) {
    // Items [from, index) keep their bytes, moved down by what was removed before them; item `index` gets none.
    const shift = at - source[from]!;
    data.set(items.data.subarray(source[from], source[index]), at);
    for (let i = from; i <= index; i++) offsets[i] = source[i]! + shift;
    at = offsets[index]!;
    if (index < count) {
      validity[index >> 3]! &= ~(1 << (index & 7));
      from = index + 1;
    }
  }
  return { data: data.subarray(0, at), offsets, validity };
}
