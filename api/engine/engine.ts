/**
 * The pseudonymization engine: turns batches of identifiers of one context into pseudonyms and
 * back, by the context's policy, with the keyring's versions.
 *
 * Pseudonym text is built and parsed in pseudonymFormat.ts (deterministic AES-SIV, randomized AES-SIV with
 * a random 16-byte nonce as the last associated-data component, keyed hash). FF1 (`fpe`) pseudonyms keep the identifier's length and alphabet, so they cannot carry the
 * version: pseudonymize reports it, and reidentify takes it (default: the active version).
 *
 * The AWS sample's pseudonyms (legacyAwsSample.ts) are read in the contexts an imported sample key is bound to: a
 * pseudonym that is not of this service's format but parses as the sample's is decrypted with that key. They are
 * only read: rewrap turns them into the pseudonyms pseudonymize gives (deterministic, or FF1 / keyed hash by policy).
 *
 * Only pseudonymize results of deterministic transforms are cached (identifier -> pseudonym): strings for the
 * string path, bytes for the packed path, in two caches (see `packedCache`). Reidentify is never cached, so the
 * cache cannot serve as a decryption oracle.
 */
import { isAscii, isUtf8 } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { RequestError, type ItemProblem } from '../errors.ts';
import type { Keyring, KeyVersion, LegacyKeys } from '../keyring/keyring.ts';
import type { ContextPolicy, PolicySet } from '../policy/policy.ts';
import { BLOCK, packByteArrays, packedItem, splitHeads, type PackedBytes } from './_blocks.ts';
import { fpeRejectReason } from './ff1.ts';
import { DIGEST_BYTES } from './keyedHash.ts';
import { asBuffer, packUtf8 } from './_text.ts';
import { parseAwsSamplePseudonym } from './legacyAwsSample.ts';
import { deterministicPseudonymsPacked } from './sivText.ts';
import { decodePayloadsPacked, decodePayloadsPackedBytes, formatPseudonymsPacked, hasCanonicalPayload, PACKED_HEADER_MODES, parsePseudonymHeader, parsePseudonymHeadersPacked, pseudonymFormatter, type DecodedPayloads, type ParsedPseudonym } from './pseudonymFormat.ts';

export type Nullable<T> = T | null;

export interface EngineOptions {
  /** Entries in the pseudonymize cache; 0 turns it off. */
  readonly cacheEntries: number;
  /** Longest identifier accepted, in UTF-8 bytes. */
  readonly maxValueBytes: number;
}

export interface PseudonymizeResult {
  readonly pseudonyms: Nullable<string>[];
  readonly keyVersion: number;
}

/** Why one pseudonym could not be reidentified. Stable strings: clients branch on them. */
export type ReidentifyFailure =
  | 'malformed'
  | 'unknown-key-version'
  | 'key-destroyed'
  | 'authentication-failed'
  | 'irreversible'
  /** The data subject's erasure was filed (right to be forgotten): never re-identified again. */
  | 'erased';

export interface ReidentifyResult {
  /** In input order; null for null inputs and for failed items (listed in `errors`). */
  readonly values: Nullable<string>[];
  readonly errors: { index: number; reason: ReidentifyFailure }[];
}

/**
 * A batch of texts as one UTF-8 buffer (an Arrow Utf8 column's buffers): item i is `data[offsets[i] .. offsets[i + 1])`
 * (offsets need not start at 0), null where bit i of `validity` is clear (Arrow's LSB bit order); no bitmap: none null.
 */
export interface PackedTexts {
  readonly data: Uint8Array;
  readonly offsets: Int32Array;
  readonly validity: Uint8Array | undefined;
}

export interface PackedPseudonymizeResult {
  /** In input order, null where the input is null (the input's bitmap); the pseudonym texts as ASCII bytes. */
  readonly pseudonyms: PackedTexts;
  readonly keyVersion: number;
}

/** Rewrap: pseudonyms under the active version; failed items are null and listed in `errors`, as in reidentify. */
export interface RewrapResult {
  readonly pseudonyms: Nullable<string>[];
  readonly keyVersion: number;
  readonly errors: ReidentifyResult['errors'];
}

/** Reidentify of a packed batch: the values' UTF-8 bytes in input order, null (no bytes) where `ReidentifyResult.values` has null. */
export interface PackedReidentifyResult {
  readonly values: PackedTexts;
  readonly errors: ReidentifyResult['errors'];
}

/** Rewrap of a packed batch: the pseudonyms' (ASCII) bytes in input order, null where `RewrapResult.pseudonyms` has null. */
export interface PackedRewrapResult {
  readonly pseudonyms: PackedTexts;
  readonly keyVersion: number;
  readonly errors: ReidentifyResult['errors'];
}

/** One group of AES-SIV tokens decrypted as a batch: item k belongs to input `indexes[k]`, and is usable when `valid[k]`. */
interface DecryptedGroup {
  readonly randomized: boolean;
  /** The AWS sample's pseudonyms: rewrapped to what pseudonymize gives in the context. */
  readonly legacy: boolean;
  readonly indexes: readonly number[];
  readonly plaintexts: PackedBytes;
  readonly valid: Uint8Array;
}

/** A batch of no items (the misses of a batch the cache answered whole). */
const NO_ITEMS: PackedBytes = { data: new Uint8Array(0), offsets: Int32Array.of(0) };

/** The packed cache's admission when full: every miss of a batch with at least 1/64 hits, else one miss in 16. */
const ADMIT_ALL_AT_HIT_SHARE = 64;
const ADMIT_ONE_IN = 16;
/**
 * A full cache looks up this many values, spread over a batch, before it looks up the rest: a batch of distinct
 * values (under 1/64 hits in the sample) is then encrypted whole without a lookup per value.
 */
const PROBE_SAMPLE = 256;

/**
 * PROBE_SAMPLE items spread over a batch of `count` looked up in a full cache by their keys (`keyAt` undefined: a
 * null, not looked up): `distinct` when under 1/64 of those looked up hit, the hits, and the sampled misses' indexes.
 */
function sampleCache(cache: LRUCache<string, string>, count: number, keyAt: (k: number) => string | undefined): { distinct: boolean; hits: number; missed: number[] } {
  const step = Math.floor(count / PROBE_SAMPLE);
  const missed: number[] = [];
  let probes = 0;
  for (let p = 0; p < PROBE_SAMPLE; p++) {
    const key = keyAt(p * step);
    if (key === undefined) continue;
    probes++;
    if (cache.get(key) === undefined) missed.push(p * step);
  }
  const hits = probes - missed.length;
  return { distinct: probes > 0 && hits * ADMIT_ALL_AT_HIT_SHARE < probes, hits, missed };
}

/** At most this many item problems are reported for one request. */
const MAX_REPORTED_PROBLEMS = 20;

export class PseudonymEngine {
  private readonly cache: LRUCache<string, string> | undefined;
  /**
   * The packed path's cache: context NUL the value's UTF-8 bytes read as latin1 -> the pseudonym's (ASCII) bytes,
   * copied into a string.
   * Apart from `cache`: a latin1 reading of UTF-8 bytes can be another value's JS string ('Ã©' is how 'é' reads),
   * so one key space could answer one identifier with another's pseudonym.
   */
  private readonly packedCache: LRUCache<string, string> | undefined;
  private cacheGeneration = -1;
  cacheHits = 0;
  cacheMisses = 0;

  constructor(
    private readonly keyring: Keyring,
    private readonly policies: PolicySet,
    private readonly options: EngineOptions,
  ) {
    this.cache = options.cacheEntries > 0 ? new LRUCache<string, string>({ max: options.cacheEntries }) : undefined;
    this.packedCache = options.cacheEntries > 0 ? new LRUCache<string, string>({ max: options.cacheEntries }) : undefined;
  }

  get cacheSize(): number {
    return (this.cache?.size ?? 0) + (this.packedCache?.size ?? 0);
  }

  pseudonymize(context: string, values: readonly Nullable<string>[], options: { deterministic: boolean }): PseudonymizeResult {
    const policy = this.policies.resolve(context);
    if (!options.deterministic && policy.transform !== 'deterministic') {
      throw new RequestError('unsupported-mode', `deterministic=false is available only for contexts with the deterministic transform; this context uses ${policy.transform}`);
    }
    this.validateValues(values, policy);
    const key = this.keyring.active();
    this.dropStaleCache();
    const cachePrefix = `${context}\u0000`;
    const pseudonyms: Nullable<string>[] = new Array<Nullable<string>>(values.length).fill(null);
    const missIndexes: number[] = [];
    const missValues: string[] = [];
    const cache = options.deterministic ? this.cache : undefined;
    // A full cache and a large batch: a sample first, as on the packed path (`distinctBatchUnder`); a batch of distinct
    // values is then computed whole, its lookups skipped.
    const sampled =
      cache && cache.size >= cache.max && values.length >= 2 * PROBE_SAMPLE
        ? sampleCache(cache, values.length, (k) => (values[k] === null || values[k] === undefined ? undefined : cachePrefix + values[k]))
        : undefined;
    const lookUp = cache && !sampled?.distinct ? cache : undefined;
    let present = 0;
    for (let i = 0; i < values.length; i++) {
      const value = values[i];
      if (value === null || value === undefined) continue;
      present++;
      const hit = lookUp?.get(cachePrefix + value);
      if (hit !== undefined) {
        pseudonyms[i] = hit;
        continue;
      }
      missIndexes.push(i);
      missValues.push(value);
    }
    if (lookUp) {
      this.cacheHits += present - missValues.length;
      this.cacheMisses += missValues.length;
    } else if (sampled) {
      // Only the sample was looked up.
      this.cacheHits += sampled.hits;
      this.cacheMisses += sampled.missed.length;
    }
    if (missValues.length === 0) return { pseudonyms, keyVersion: key.version };

    let computed: string[];
    if (policy.transform === 'hash') computed = this.hash(key, context, missValues);
    else if (policy.transform === 'fpe') computed = key.ff1(context, policy.alphabet).encryptBatch(missValues);
    else computed = this.sivEncrypt(key, context, missValues, options.deterministic);

    for (let k = 0; k < missIndexes.length; k++) pseudonyms[missIndexes[k]!] = computed[k]!;
    if (sampled?.distinct) {
      // One sampled miss in ADMIT_ONE_IN gets in, so that values that do recur turn later batches back to lookups.
      for (let j = 0; j < sampled.missed.length; j += ADMIT_ONE_IN) cache!.set(cachePrefix + values[sampled.missed[j]!]!, pseudonyms[sampled.missed[j]!]!);
    } else if (lookUp) {
      // The packed path's admission: every miss while the cache fills or when the batch hit at least 1/64, else one in 16.
      const admitAll = lookUp.size < lookUp.max || (present - missValues.length) * ADMIT_ALL_AT_HIT_SHARE >= present;
      for (let k = 0; k < missIndexes.length; k++) if (admitAll || k % ADMIT_ONE_IN === 0) lookUp.set(cachePrefix + missValues[k]!, computed[k]);
    }
    return { pseudonyms, keyVersion: key.version };
  }

  /** True when `pseudonymizePacked` serves this context and mode: deterministic pseudonyms of the AES-SIV transform. */
  takesPacked(context: string, options: { deterministic: boolean }): boolean {
    return options.deterministic && this.policies.resolve(context).transform === 'deterministic';
  }

  /**
   * `pseudonymize` for a batch held as UTF-8 bytes (an Arrow column), answering the pseudonym texts as bytes: the
   * same checks and per-item problems, and bit for bit the same pseudonyms, without a JavaScript string per value.
   * Only where `takesPacked` (the deterministic AES-SIV path). The values must be valid UTF-8 (the Arrow reader
   * checks them; UTF-8 cannot hold a lone surrogate). Cached in `packedCache`: hits are copied into the answer, the
   * misses encrypted as one sub-batch.
   */
  pseudonymizePacked(context: string, values: PackedTexts, options: { deterministic: boolean }): PackedPseudonymizeResult {
    if (!this.takesPacked(context, options)) throw new RequestError('unsupported-mode', 'packed batches are taken for deterministic AES-SIV pseudonyms only');
    const present = presentItems(values);
    const problems: ItemProblem[] = [];
    const maxBytes = this.options.maxValueBytes;
    const { offsets } = present.packed;
    for (let k = 0; k + 1 < offsets.length && problems.length < MAX_REPORTED_PROBLEMS; k++) {
      if (offsets[k + 1]! - offsets[k]! > maxBytes) problems.push({ index: present.indexes ? present.indexes[k]! : k, reason: tooLongReason(maxBytes) });
    }
    throwValueProblems(problems);
    const key = this.keyring.active();
    this.dropStaleCache();
    const cache = this.packedCache;
    const pseudonyms = cache ? this.cachedSivPseudonymsPacked(cache, key, context, present.packed) : this.sivPseudonymsPackedUnder(key, context, present.packed);
    return { pseudonyms: spreadOverNulls(pseudonyms, values), keyVersion: key.version };
  }

  /** `sivPseudonymsPackedUnder` through the packed cache: hits copied in input order, misses computed as one batch and cached. */
  private cachedSivPseudonymsPacked(cache: LRUCache<string, string>, key: KeyVersion, context: string, present: PackedBytes): PackedBytes {
    const { offsets } = present;
    const bytes = asBuffer(present.data);
    const count = offsets.length - 1;
    const cachePrefix = `${context}\u0000`;
    if (cache.size >= cache.max && count >= 2 * PROBE_SAMPLE) {
      const distinct = this.distinctBatchUnder(cache, key, context, present, cachePrefix);
      if (distinct) return distinct;
    }
    // The batch's text read once (latin1: one char per byte, so a UTF-8 value and the string its bytes spell in latin1
    // are one key), and each lookup key a slice of it. A key that goes into the cache is read afresh instead: a slice
    // would keep the whole batch's text alive as long as its entry.
    const base = offsets[0]!;
    const text = bytes.toString('latin1', base, offsets[count]);
    const answers = new Array<string>(count);
    const missIndexes: number[] = [];
    let missBytes = 0;
    for (let k = 0; k < count; k++) {
      const hit = cache.get(cachePrefix + text.slice(offsets[k]! - base, offsets[k + 1]! - base));
      if (hit !== undefined) answers[k] = hit;
      else {
        missIndexes.push(k);
        missBytes += offsets[k + 1]! - offsets[k]!;
      }
    }
    const misses = missIndexes.length;
    this.cacheHits += count - misses;
    this.cacheMisses += misses;

    let computed: PackedBytes = NO_ITEMS;
    if (misses === count) computed = this.sivPseudonymsPackedUnder(key, context, present);
    else if (misses > 0) {
      const missOffsets = new Int32Array(misses + 1);
      const missData = new Uint8Array(missBytes);
      let at = 0;
      for (let j = 0; j < misses; j++) {
        const k = missIndexes[j]!;
        missOffsets[j] = at;
        missData.set(bytes.subarray(offsets[k], offsets[k + 1]), at);
        at += offsets[k + 1]! - offsets[k]!;
      }
      missOffsets[misses] = at;
      computed = this.sivPseudonymsPackedUnder(key, context, { data: missData, offsets: missOffsets });
    }
    // Copied out as strings (the text is ASCII): an entry must not hold on to (or alias) a batch's buffers, and a
    // short string is a lighter heap object than a Uint8Array (all values distinct: ~20% less CPU per value).
    // A full cache and a batch it answered (almost) nothing of, as a column of distinct values sends: only one miss in
    // ADMIT_ONE_IN is inserted. Inserting all evicts an entry per value for no later hit (bench:spark, all distinct: API
    // CPU 0.80 -> 2.71 µs per row). Values that recur get in within a batch or two, and then their batches admit all.
    const admitAll = cache.size < cache.max || (count - misses) * ADMIT_ALL_AT_HIT_SHARE >= count;
    const computedText = asBuffer(computed.data);
    for (let j = 0; j < misses; j++) {
      if (!admitAll && j % ADMIT_ONE_IN !== 0) continue;
      const k = missIndexes[j]!;
      cache.set(cachePrefix + bytes.toString('latin1', offsets[k], offsets[k + 1]), computedText.toString('latin1', computed.offsets[j], computed.offsets[j + 1]));
    }
    if (misses === count) return computed;
    if (misses > 0) for (let j = 0; j < misses; j++) answers[missIndexes[j]!] = computedText.toString('latin1', computed.offsets[j], computed.offsets[j + 1]);
    // The answer: every pseudonym joined and written in one call (ASCII, so each one's length is its byte count).
    const outOffsets = new Int32Array(count + 1);
    for (let k = 0; k < count; k++) outOffsets[k + 1] = outOffsets[k]! + answers[k]!.length;
    return { data: Buffer.from(answers.join(''), 'latin1'), offsets: outOffsets };
  }

  /**
   * A full cache and a batch of (almost) distinct values, as an identifier column of a fact table sends: looking up
   * every value costs more than encrypting it (bench:spark, all distinct: the lookups took the API from 0.80 to
   * 1.54-1.71 µs of CPU per row). So PROBE_SAMPLE values spread over the batch are looked up first; under 1/64 hits
   * among them, the whole batch is encrypted without further lookups (the answers are the same: a hit holds what
   * encryption gives) and one sampled miss in ADMIT_ONE_IN is admitted, so values that do recur still get in and
   * turn later batches back to full lookups. Undefined when the sample hits enough to look up every value.
   */
  private distinctBatchUnder(cache: LRUCache<string, string>, key: KeyVersion, context: string, present: PackedBytes, cachePrefix: string): PackedBytes | undefined {
    const { offsets } = present;
    const bytes = asBuffer(present.data);
    const keyAt = (k: number): string => cachePrefix + bytes.toString('latin1', offsets[k], offsets[k + 1]);
    const { distinct, hits, missed } = sampleCache(cache, offsets.length - 1, keyAt);
    // Counted only when the sample is all that is looked up; otherwise every value is looked up and counted after.
    if (!distinct) return undefined;
    this.cacheHits += hits;
    this.cacheMisses += missed.length;
    const computed = this.sivPseudonymsPackedUnder(key, context, present);
    const text = asBuffer(computed.data);
    for (let j = 0; j < missed.length; j += ADMIT_ONE_IN) {
      const k = missed[j]!;
      cache.set(keyAt(k), text.toString('latin1', computed.offsets[k], computed.offsets[k + 1]));
    }
    return computed;
  }

  /**
   * Deterministic AES-SIV pseudonyms (as `pseudonymize` gives them) of packed values under one key version, the
   * nulls kept; unchecked: the values have passed `pseudonymizePacked` (erasure/suppression.ts looks up every
   * readable version's pseudonyms of them).
   */
  sivPseudonymsPacked(key: KeyVersion, context: string, values: PackedTexts): PackedTexts {
    return spreadOverNulls(this.sivPseudonymsPackedUnder(key, context, presentItems(values).packed), values);
  }

  private sivPseudonymsPackedUnder(key: KeyVersion, context: string, present: PackedBytes): PackedBytes {
    return deterministicPseudonymsPacked(key.siv, key.headerState(context), present, key.version);
  }

  /** Decrypts by the context's policy. Erased subjects are withheld outside the engine (erasure/suppression.ts). */
  reidentify(context: string, pseudonyms: readonly Nullable<string>[], options: { keyVersion?: number | undefined } = {}): ReidentifyResult {
    const policy = this.policies.resolve(context);
    const values: Nullable<string>[] = new Array<Nullable<string>>(pseudonyms.length).fill(null);
    const errors: ReidentifyResult['errors'] = [];
    if (policy.transform === 'fpe') {
      this.fpeReidentify(context, policy, pseudonyms, options.keyVersion, values, errors);
    } else {
      this.tokenReidentify(context, pseudonyms, values, errors);
    }
    errors.sort((a, b) => a.index - b.index);
    return { values, errors };
  }

  /**
   * The same subjects' pseudonyms under the active key version, in input order, each in its own mode (a
   * deterministic token stays deterministic, a randomized one gets a fresh nonce; FF1 stays FF1, and `keyVersion`
   * names the version of FF1 inputs as in reidentify). Items that cannot be decrypted fail as in reidentify; a keyed
   * hash is `irreversible`. The plaintexts stay in packed bytes between one batch decryption per group and one
   * batch encryption under the active key: they never become strings, and never leave this call.
   */
  rewrap(context: string, pseudonyms: readonly Nullable<string>[], options: { keyVersion?: number | undefined } = {}): RewrapResult {
    const policy = this.policies.resolve(context);
    const active = this.keyring.active();
    const out: Nullable<string>[] = new Array<Nullable<string>>(pseudonyms.length).fill(null);
    const errors: ReidentifyResult['errors'] = [];
    if (policy.transform === 'fpe') {
      const values: Nullable<string>[] = new Array<Nullable<string>>(pseudonyms.length).fill(null);
      this.fpeReidentify(context, policy, pseudonyms, options.keyVersion, values, errors);
      const decrypted: number[] = [];
      const plaintexts: string[] = [];
      for (let i = 0; i < values.length; i++) {
        const value = values[i];
        if (value === null || value === undefined) continue;
        // Only an AWS sample pseudonym's value can be outside the alphabet: it has no FF1 pseudonym in this context.
        if (fpeRejectReason(policy.alphabet, policy.maxLength, value)) {
          errors.push({ index: i, reason: 'malformed' });
          continue;
        }
        decrypted.push(i);
        plaintexts.push(value);
      }
      const rewrapped = active.ff1(context, policy.alphabet).encryptBatch(plaintexts);
      for (let k = 0; k < decrypted.length; k++) out[decrypted[k]!] = rewrapped[k]!;
    } else {
      for (const group of this.decryptTokens(context, pseudonyms, errors)) {
        const rewrapped =
          group.legacy && policy.transform === 'hash' ? this.hashPacked(active, context, group.plaintexts) : this.sivEncryptPacked(active, context, group.plaintexts, !group.randomized);
        for (let k = 0; k < group.indexes.length; k++) if (group.valid[k]) out[group.indexes[k]!] = rewrapped[k]!;
      }
    }
    errors.sort((a, b) => a.index - b.index);
    return { pseudonyms: out, keyVersion: active.version, errors };
  }

  /**
   * True when `reidentifyPacked` and `rewrapPacked` serve this context: its tokens are this service's pseudonym text
   * (not FF1, whose inputs carry no version), and no AWS sample key is bound to it (the sample's pseudonyms take the
   * string path).
   */
  takesPackedTokens(context: string): boolean {
    if (this.policies.resolve(context).transform === 'fpe') return false;
    const legacy = this.keyring.legacyFor(context);
    return legacy.keys.length === 0 && !legacy.destroyed;
  }

  /**
   * `reidentify` of a batch held as UTF-8 bytes (an Arrow column), answering the values' UTF-8 bytes: the same values and
   * per-item errors, without a JavaScript string per pseudonym or value. Only where `takesPackedTokens`; the
   * `keyVersion` option of reidentify names FF1 inputs' version, so it has no part here.
   */
  reidentifyPacked(context: string, pseudonyms: PackedTexts): PackedReidentifyResult {
    if (!this.takesPackedTokens(context)) throw new RequestError('unsupported-mode', 'packed batches are reidentified for AES-SIV and keyed-hash tokens only');
    const errors: ReidentifyResult['errors'] = [];
    const groups = this.decryptTokensPacked(context, pseudonyms, errors);
    errors.sort((a, b) => a.index - b.index);
    return { values: wellFormedUtf8(inInputOrder(groups, pseudonyms.offsets.length - 1)), errors };
  }

  /**
   * `rewrap` of a batch held as UTF-8 bytes, answering the pseudonyms' bytes: each group decrypted as a batch and its
   * plaintexts encrypted under the active version as a batch, in their own mode, as `rewrap` does. Only where
   * `takesPackedTokens`. The plaintexts never leave this call.
   */
  rewrapPacked(context: string, pseudonyms: PackedTexts): PackedRewrapResult {
    if (!this.takesPackedTokens(context)) throw new RequestError('unsupported-mode', 'packed batches are rewrapped for AES-SIV and keyed-hash tokens only');
    const active = this.keyring.active();
    const errors: ReidentifyResult['errors'] = [];
    const rewrapped = this.decryptTokensPacked(context, pseudonyms, errors).map((group) => ({ ...group, plaintexts: this.sivPseudonymsOfPlaintexts(active, context, group.plaintexts, !group.randomized) }));
    errors.sort((a, b) => a.index - b.index);
    return { pseudonyms: inInputOrder(rewrapped, pseudonyms.offsets.length - 1), keyVersion: active.version, errors };
  }

  /** Pseudonyms (packed ASCII text) of packed plaintexts under `key`: deterministic, or randomized with fresh nonces (payload nonce || V || C). */
  private sivPseudonymsOfPlaintexts(key: KeyVersion, context: string, plaintexts: PackedBytes, deterministic: boolean): PackedBytes {
    const header = key.headerState(context);
    if (deterministic) return deterministicPseudonymsPacked(key.siv, header, plaintexts, key.version);
    const count = plaintexts.offsets.length - 1;
    const nonces = randomBytes(count * BLOCK);
    const encrypted = key.siv.encryptBatch(key.siv.headerStatesWithNonces(header, nonces), plaintexts);
    const offsets = new Int32Array(count + 1);
    const data = new Uint8Array(count * BLOCK + encrypted.offsets[count]! - encrypted.offsets[0]!);
    let at = 0;
    for (let k = 0; k < count; k++) {
      offsets[k] = at;
      data.set(nonces.subarray(k * BLOCK, (k + 1) * BLOCK), at);
      data.set(encrypted.data.subarray(encrypted.offsets[k], encrypted.offsets[k + 1]), at + BLOCK);
      at += BLOCK + encrypted.offsets[k + 1]! - encrypted.offsets[k]!;
    }
    offsets[count] = at;
    return formatPseudonymsPacked('randomized', key.version, { data, offsets });
  }

  /**
   * `decryptTokens` for a packed batch, without the AWS sample's pseudonyms (`takesPackedTokens`): headers parsed from the
   * bytes, items grouped by mode and version, each group's payloads decoded from the bytes into one buffer and decrypted
   * as a batch. Every other item is listed in `errors` with the reason the string path gives it.
   */
  private decryptTokensPacked(context: string, pseudonyms: PackedTexts, errors: ReidentifyResult['errors']): DecryptedGroup[] {
    const { data, offsets, validity } = pseudonyms;
    const count = offsets.length - 1;
    const headers = parsePseudonymHeadersPacked(data, offsets, validity);
    const groups = new Map<number, { mode: number; version: number; indexes: number[] }>();
    let last: { mode: number; version: number; indexes: number[] } | undefined;
    for (let i = 0; i < count; i++) {
      if (!isPresent(validity, i)) continue;
      const mode = headers.modes[i]!;
      if (mode === 0) {
        errors.push({ index: i, reason: 'malformed' });
        continue;
      }
      const version = headers.versions[i]!;
      let group = last?.mode === mode && last.version === version ? last : undefined;
      if (!group) {
        const groupKey = version * 4 + mode;
        group = groups.get(groupKey);
        if (!group) groups.set(groupKey, (group = { mode, version, indexes: [] }));
        last = group;
      }
      group.indexes.push(i);
    }
    const decrypted: DecryptedGroup[] = [];
    for (const group of groups.values()) {
      const mode = PACKED_HEADER_MODES[group.mode - 1];
      const lookup = this.keyring.lookup(group.version);
      if (mode === 'hash' || lookup.kind !== 'usable') {
        const reason: ReidentifyFailure = mode === 'hash' ? 'irreversible' : lookup.kind === 'unknown' ? 'unknown-key-version' : 'key-destroyed';
        // As failAll in decryptTokens: an item that is not spelled canonically is malformed, whatever its header says.
        const decoded = decodeGroupPayloads(data, offsets, headers.payloadStarts, group.indexes);
        group.indexes.forEach((index, k) => errors.push({ index, reason: decoded.canonical[k] ? reason : 'malformed' }));
        continue;
      }
      const randomized = mode === 'randomized';
      const minimum = randomized ? 2 * BLOCK : BLOCK;
      const maximum = minimum + this.options.maxValueBytes;
      const accepted: number[] = [];
      for (const index of group.indexes) {
        const length = payloadLength(headers.payloadStarts[index]!, offsets[index + 1]!);
        if (length < minimum || length > maximum) errors.push({ index, reason: 'malformed' });
        else accepted.push(index);
      }
      if (accepted.length === 0) continue;
      const done = this.sivDecryptDecoded(lookup.key, context, randomized, accepted, decodeGroupPayloads(data, offsets, headers.payloadStarts, accepted), errors);
      if (done) decrypted.push(done);
    }
    return decrypted;
  }

  /**
   * The deterministic pseudonyms (as `pseudonymize` would give them, uncached) of each value under each of the
   * given key versions, in that order: one array per value. The values are checked as `pseudonymize` does,
   * unless they come out of `reidentify` (`check: false`): a policy tightened since must not refuse those.
   */
  pseudonymsUnder(keys: readonly KeyVersion[], context: string, values: readonly string[], options: { check: boolean } = { check: true }): string[][] {
    const policy = this.policies.resolve(context);
    if (options.check) this.validateValues(values, policy);
    const perVersion = keys.map((key) => this.deterministic(key, context, policy, [...values]));
    return values.map((_, i) => perVersion.map((pseudonyms) => pseudonyms[i]!));
  }

  /**
   * Per value, its deterministic pseudonyms under every readable key version, newest (the active one) first; null
   * for a null value. For queries over data written before a rotation: `col IN (...)` finds every version's rows.
   * The values must have passed `pseudonymize` (it checks them).
   */
  pseudonymsInEveryVersion(context: string, values: readonly Nullable<string>[]): Nullable<string[]>[] {
    const present = values.flatMap((value, i) => (value === null ? [] : [i]));
    const keys = this.keyring.readable().reverse();
    const under = this.pseudonymsUnder(keys, context, present.map((i) => values[i]!), { check: false });
    const out: Nullable<string[]>[] = new Array<Nullable<string[]>>(values.length).fill(null);
    present.forEach((index, k) => {
      out[index] = under[k]!;
    });
    return out;
  }

  private deterministic(key: KeyVersion, context: string, policy: ContextPolicy, values: string[]): string[] {
    if (policy.transform === 'hash') return this.hash(key, context, values);
    if (policy.transform === 'fpe') return key.ff1(context, policy.alphabet).encryptBatch(values);
    return this.sivEncrypt(key, context, values, true);
  }

  private validateValues(values: readonly Nullable<string>[], policy: ContextPolicy): void {
    const problems: ItemProblem[] = [];
    const maxBytes = this.options.maxValueBytes;
    for (let i = 0; i < values.length && problems.length < MAX_REPORTED_PROBLEMS; i++) {
      const value = values[i];
      if (value === null) continue;
      if (typeof value !== 'string') problems.push({ index: i, reason: 'must be a string or null' });
      else if (!value.isWellFormed()) problems.push({ index: i, reason: 'is not well-formed Unicode (lone surrogate)' });
      else if (value.length * 3 > maxBytes && Buffer.byteLength(value, 'utf8') > maxBytes) {
        problems.push({ index: i, reason: tooLongReason(maxBytes) });
      } else if (policy.transform === 'fpe') {
        const reason = fpeRejectReason(policy.alphabet, policy.maxLength, value);
        if (reason) problems.push({ index: i, reason });
      }
    }
    throwValueProblems(problems);
  }

  private sivEncrypt(key: KeyVersion, context: string, values: string[], deterministic: boolean): string[] {
    return this.sivEncryptPacked(key, context, packUtf8(values), deterministic);
  }

  /** AES-SIV over packed UTF-8 plaintexts, formatted as pseudonyms of the key's version. */
  private sivEncryptPacked(key: KeyVersion, context: string, packed: PackedBytes, deterministic: boolean): string[] {
    const header = key.headerState(context);
    const count = packed.offsets.length - 1;
    const out = new Array<string>(count);
    if (deterministic) {
      // The pseudonyms' text in one buffer (the native batch where it is built), then a string per value from it.
      const text = deterministicPseudonymsPacked(key.siv, header, packed, key.version);
      for (let i = 0; i < count; i++) out[i] = text.data.toString('latin1', text.offsets[i], text.offsets[i + 1]);
      return out;
    }
    const nonces = randomBytes(count * BLOCK);
    const encrypted = key.siv.encryptBatch(key.siv.headerStatesWithNonces(header, nonces), packed);
    const format = pseudonymFormatter('randomized', key.version);
    const item = Buffer.allocUnsafe(BLOCK + maxItemLength(encrypted));
    for (let i = 0; i < count; i++) {
      nonces.copy(item, 0, i * BLOCK, (i + 1) * BLOCK);
      const body = packedItem(encrypted, i);
      item.set(body, BLOCK);
      out[i] = format(item, 0, BLOCK + body.length);
    }
    return out;
  }

  private hash(key: KeyVersion, context: string, values: string[]): string[] {
    return this.hashPacked(key, context, packUtf8(values));
  }

  private hashPacked(key: KeyVersion, context: string, packed: PackedBytes): string[] {
    const format = pseudonymFormatter('hash', key.version);
    const digests = key.keyedHash(context).digestBatch(packed);
    const count = packed.offsets.length - 1;
    const out = new Array<string>(count);
    for (let i = 0; i < count; i++) out[i] = format(digests, i * DIGEST_BYTES, (i + 1) * DIGEST_BYTES);
    return out;
  }

  private fpeReidentify(
    context: string,
    policy: Extract<ContextPolicy, { transform: 'fpe' }>,
    pseudonyms: readonly Nullable<string>[],
    keyVersion: number | undefined,
    values: Nullable<string>[],
    errors: ReidentifyResult['errors'],
  ): void {
    const lookup = keyVersion === undefined ? { kind: 'usable' as const, key: this.keyring.active() } : this.keyring.lookup(keyVersion);
    const legacy = this.keyring.legacyFor(context);
    const hasLegacy = legacy.keys.length > 0 || legacy.destroyed;
    const accepted: number[] = [];
    const ciphertexts: string[] = [];
    for (let i = 0; i < pseudonyms.length; i++) {
      const pseudonym = pseudonyms[i];
      if (pseudonym === null || pseudonym === undefined) continue;
      // The sample's pseudonym first: it authenticates, FF1 does not. One that fails and is no FF1 text fails as the sample's.
      const payload = hasLegacy && typeof pseudonym === 'string' ? parseAwsSamplePseudonym(pseudonym, this.options.maxValueBytes) : undefined;
      if (payload) {
        const plaintext = legacyDecrypt(legacy, payload);
        if (plaintext) {
          values[i] = asBuffer(plaintext).toString('utf8');
          continue;
        }
        if (fpeRejectReason(policy.alphabet, policy.maxLength, pseudonym)) {
          errors.push({ index: i, reason: legacy.keys.length === 0 ? 'key-destroyed' : 'authentication-failed' });
          continue;
        }
      }
      if (lookup.kind === 'unknown') errors.push({ index: i, reason: 'unknown-key-version' });
      else if (lookup.kind === 'destroyed') errors.push({ index: i, reason: 'key-destroyed' });
      else if (typeof pseudonym !== 'string' || fpeRejectReason(policy.alphabet, policy.maxLength, pseudonym)) errors.push({ index: i, reason: 'malformed' });
      else {
        accepted.push(i);
        ciphertexts.push(pseudonym);
      }
    }
    if (lookup.kind !== 'usable' || accepted.length === 0) return;
    const decrypted = lookup.key.ff1(context, policy.alphabet).decryptBatch(ciphertexts);
    for (let k = 0; k < accepted.length; k++) values[accepted[k]!] = decrypted[k]!;
  }

  /** Groups tokens by mode and key version, then decrypts each group as one batch. */
  private tokenReidentify(context: string, pseudonyms: readonly Nullable<string>[], values: Nullable<string>[], errors: ReidentifyResult['errors']): void {
    for (const group of this.decryptTokens(context, pseudonyms, errors)) {
      const { indexes, plaintexts, valid } = group;
      const bytes = asBuffer(plaintexts.data);
      for (let k = 0; k < indexes.length; k++) if (valid[k]) values[indexes[k]!] = bytes.toString('utf8', plaintexts.offsets[k], plaintexts.offsets[k + 1]);
    }
  }

  /** The decrypted groups of AES-SIV tokens (one per mode and version); every other item is listed in `errors`. */
  private decryptTokens(context: string, pseudonyms: readonly Nullable<string>[], errors: ReidentifyResult['errors']): DecryptedGroup[] {
    const groups = new Map<string, { mode: ParsedPseudonym['mode']; version: number; indexes: number[]; parsed: ParsedPseudonym[] }>();
    let last: { mode: ParsedPseudonym['mode']; version: number; indexes: number[]; parsed: ParsedPseudonym[] } | undefined;
    const legacy = this.keyring.legacyFor(context);
    const hasLegacy = legacy.keys.length > 0 || legacy.destroyed;
    const legacyIndexes: number[] = [];
    const legacyPayloads: Uint8Array[] = [];
    for (let i = 0; i < pseudonyms.length; i++) {
      const pseudonym = pseudonyms[i];
      if (pseudonym === null || pseudonym === undefined) continue;
      // The header only: the payload's spelling is checked while it is decoded (sivDecryptGroup, failAll below).
      const parsed = typeof pseudonym === 'string' ? parsePseudonymHeader(pseudonym) : undefined;
      if (!parsed) {
        // Not this service's format: in a context an AWS sample key is bound to, maybe the sample's.
        const payload = hasLegacy && typeof pseudonym === 'string' ? parseAwsSamplePseudonym(pseudonym, this.options.maxValueBytes) : undefined;
        if (payload) {
          legacyIndexes.push(i);
          legacyPayloads.push(payload);
        } else errors.push({ index: i, reason: 'malformed' });
        continue;
      }
      // A batch is mostly of one mode and version: the previous item's group, without a key string per item.
      let group = last?.mode === parsed.mode && last.version === parsed.version ? last : undefined;
      if (!group) {
        const groupKey = `${parsed.mode}${parsed.version}`;
        group = groups.get(groupKey);
        if (!group) groups.set(groupKey, (group = { mode: parsed.mode, version: parsed.version, indexes: [], parsed: [] }));
        last = group;
      }
      group.indexes.push(i);
      group.parsed.push(parsed);
    }
    const decrypted: DecryptedGroup[] = [];
    for (const group of groups.values()) {
      const lookup = this.keyring.lookup(group.version);
      const failAll = (reason: ReidentifyFailure): void => {
        group.indexes.forEach((index, k) => errors.push({ index, reason: hasCanonicalPayload(pseudonyms[index]!, group.parsed[k]!) ? reason : 'malformed' }));
      };
      if (group.mode === 'hash') failAll('irreversible');
      else if (lookup.kind === 'unknown') failAll('unknown-key-version');
      else if (lookup.kind === 'destroyed') failAll('key-destroyed');
      else {
        const done = this.sivDecryptGroup(lookup.key, context, group.mode === 'randomized', group.indexes, group.parsed, pseudonyms, errors);
        if (done) decrypted.push(done);
      }
    }
    if (legacyIndexes.length > 0) {
      const done = legacyDecryptGroup(legacy, legacyIndexes, legacyPayloads, errors);
      if (done) decrypted.push(done);
    }
    return decrypted;
  }

  /**
   * Decrypts one group of tokens of one mode and version as a batch. Items that fail are listed in `errors`; the
   * plaintexts of all accepted items come back packed (a failed item has no bytes and `valid[k]` 0).
   */
  private sivDecryptGroup(
    key: KeyVersion,
    context: string,
    randomized: boolean,
    indexes: readonly number[],
    parsed: readonly ParsedPseudonym[],
    pseudonyms: readonly Nullable<string>[],
    errors: ReidentifyResult['errors'],
  ): DecryptedGroup | undefined {
    const minimum = randomized ? 2 * BLOCK : BLOCK;
    const maximum = minimum + this.options.maxValueBytes;
    const accepted: number[] = [];
    const texts: string[] = [];
    const payloadStarts: number[] = [];
    let total = 0;
    for (let k = 0; k < indexes.length; k++) {
      const length = parsed[k]!.payloadLength;
      if (length < minimum || length > maximum) {
        errors.push({ index: indexes[k]!, reason: 'malformed' });
        continue;
      }
      accepted.push(indexes[k]!);
      texts.push(pseudonyms[indexes[k]!]!);
      payloadStarts.push(parsed[k]!.payloadStart);
      total += length;
    }
    if (accepted.length === 0) return undefined;
    // Decoded straight into one packed buffer, the spelling checked in the same pass: no string or buffer per pseudonym.
    return this.sivDecryptDecoded(key, context, randomized, accepted, decodePayloadsPacked(texts, payloadStarts, total), errors);
  }

  /** The rest of `sivDecryptGroup` once the accepted items' payloads are decoded (from strings or from bytes). */
  private sivDecryptDecoded(key: KeyVersion, context: string, randomized: boolean, accepted: number[], decoded: DecodedPayloads, errors: ReidentifyResult['errors']): DecryptedGroup | undefined {
    let payloads: PackedBytes = decoded;
    if (decoded.malformed > 0) {
      // Not canonical: malformed, as parsePseudonym would have said. Such items have no bytes, so dropping their offsets keeps the batch packed.
      const kept: number[] = [];
      const keptOffsets: number[] = [];
      accepted.forEach((index, k) => {
        if (decoded.canonical[k]) {
          kept.push(index);
          keptOffsets.push(decoded.offsets[k]!);
        } else errors.push({ index, reason: 'malformed' });
      });
      if (kept.length === 0) return undefined;
      keptOffsets.push(decoded.offsets[accepted.length]!);
      accepted = kept;
      payloads = { data: decoded.data, offsets: Int32Array.from(keptOffsets) };
    }
    const header = key.headerState(context);
    let states: Uint8Array = header;
    let ciphertexts = payloads;
    if (randomized) {
      // nonce || V || C: the nonces make per-value header states, the rest is decrypted as a batch.
      const { heads: nonces, tails } = splitHeads(payloads, BLOCK);
      states = key.siv.headerStatesWithNonces(header, nonces);
      ciphertexts = tails;
    }
    const { plaintexts, valid } = key.siv.decryptBatch(states, ciphertexts);
    for (let k = 0; k < accepted.length; k++) if (!valid[k]) errors.push({ index: accepted[k]!, reason: 'authentication-failed' });
    return { randomized, legacy: false, indexes: accepted, plaintexts, valid };
  }

  /** A rotation or destruction changes which pseudonym an identifier gets: start the caches afresh. */
  private dropStaleCache(): void {
    if (this.cacheGeneration === this.keyring.generation) return;
    this.cache?.clear();
    this.packedCache?.clear();
    this.cacheGeneration = this.keyring.generation;
  }
}

function tooLongReason(maxBytes: number): string {
  return `is longer than ${maxBytes} bytes`;
}

/** The one refusal of a batch with values that cannot be pseudonymized, string or packed. */
function throwValueProblems(problems: ItemProblem[]): void {
  if (problems.length > 0) {
    throw new RequestError('validation-failed', `${problems.length === MAX_REPORTED_PROBLEMS ? 'at least ' : ''}${problems.length} value(s) cannot be pseudonymized`, problems);
  }
}

function isPresent(validity: Uint8Array | undefined, i: number): boolean {
  return validity === undefined || (validity[i >> 3]! & (1 << (i & 7))) !== 0;
}

/**
 * The non-null items of a packed batch as one packed batch, and (when some are null) the input index of each.
 * Null slots normally hold no bytes, so the data is shared; only a batch with bytes under a null slot is copied.
 */
function presentItems(values: PackedTexts): { packed: PackedBytes; indexes: Int32Array | undefined } {
  const { data, offsets, validity } = values;
  const count = offsets.length - 1;
  if (validity === undefined) return { packed: { data, offsets }, indexes: undefined };
  const indexes: number[] = [];
  let nullBytes = false;
  for (let i = 0; i < count; i++) {
    if (isPresent(validity, i)) indexes.push(i);
    else if (offsets[i + 1] !== offsets[i]) nullBytes = true;
  }
  const presentOffsets = new Int32Array(indexes.length + 1);
  if (!nullBytes) {
    for (let k = 0; k < indexes.length; k++) presentOffsets[k] = offsets[indexes[k]!]!;
    presentOffsets[indexes.length] = offsets[count]!;
    return { packed: { data, offsets: presentOffsets }, indexes: Int32Array.from(indexes) };
  }
  const items = indexes.map((i) => data.subarray(offsets[i], offsets[i + 1]));
  return { packed: packByteArrays(items), indexes: Int32Array.from(indexes) };
}

/** Results of the present items, placed back at their inputs' positions: a null input is a null (empty) item. */
function spreadOverNulls(results: PackedBytes, values: PackedTexts): PackedTexts {
  const { validity } = values;
  if (validity === undefined) return { data: results.data, offsets: results.offsets, validity: undefined };
  const count = values.offsets.length - 1;
  const offsets = new Int32Array(count + 1);
  let k = 0;
  for (let i = 0; i < count; i++) {
    offsets[i] = results.offsets[k]!;
    if (isPresent(validity, i)) k++;
  }
  offsets[count] = results.offsets[k]!;
  return { data: results.data, offsets, validity };
}

/** The value's bytes from the first AWS sample key bound to the context that authenticates the pseudonym. */
function legacyDecrypt(legacy: LegacyKeys, payload: Uint8Array): Uint8Array | undefined {
  for (const key of legacy.keys) {
    const plaintext = key.decrypt(payload);
    if (plaintext) return plaintext;
  }
  return undefined;
}

/** The AWS sample's pseudonyms as one decrypted group; every key of theirs destroyed: `key-destroyed`, tampered: `authentication-failed`. */
function legacyDecryptGroup(legacy: LegacyKeys, indexes: readonly number[], payloads: readonly Uint8Array[], errors: ReidentifyResult['errors']): DecryptedGroup | undefined {
  if (legacy.keys.length === 0) {
    for (const index of indexes) errors.push({ index, reason: 'key-destroyed' });
    return undefined;
  }
  const valid = new Uint8Array(indexes.length);
  const plaintexts = payloads.map((payload, k) => {
    const plaintext = legacyDecrypt(legacy, payload);
    if (plaintext) valid[k] = 1;
    else errors.push({ index: indexes[k]!, reason: 'authentication-failed' });
    return plaintext ?? new Uint8Array(0);
  });
  return { randomized: false, legacy: true, indexes, plaintexts: packByteArrays(plaintexts), valid };
}

/** Bytes of a payload of base64url text `[start, end)` once decoded (as `ParsedPseudonym.payloadLength`). */
function payloadLength(start: number, end: number): number {
  return Math.floor(((end - start) * 3) / 4);
}

/** The payloads of items `indexes` of a packed batch (headers parsed) decoded into one buffer, their spelling checked. */
function decodeGroupPayloads(data: Uint8Array, offsets: Int32Array, payloadStarts: Int32Array, indexes: readonly number[]): DecodedPayloads {
  const starts = new Int32Array(indexes.length);
  const ends = new Int32Array(indexes.length);
  let capacity = 0;
  for (let k = 0; k < indexes.length; k++) {
    const index = indexes[k]!;
    starts[k] = payloadStarts[index]!;
    ends[k] = offsets[index + 1]!;
    capacity += payloadLength(starts[k]!, ends[k]!);
  }
  return decodePayloadsPackedBytes(data, starts, ends, capacity);
}

/**
 * The decrypted (or rewrapped) items of the groups in input order, as one packed batch of `count` items: item i holds the
 * bytes of the group item for input i where that item is `valid`, else it is null with no bytes.
 */
function inInputOrder(groups: readonly Pick<DecryptedGroup, 'indexes' | 'plaintexts' | 'valid'>[], count: number): PackedTexts {
  const only = groups.length === 1 ? groups[0]! : undefined;
  // A batch of one version and mode, every item answered (the common case): the group's buffers are the answer.
  if (only?.indexes.length === count && only.valid.every((valid) => valid === 1)) return { data: only.plaintexts.data, offsets: only.plaintexts.offsets, validity: undefined };
  const groupOf = new Int32Array(count).fill(-1);
  const itemOf = new Int32Array(count);
  let total = 0;
  groups.forEach((group, g) => {
    const { offsets } = group.plaintexts;
    for (let k = 0; k < group.indexes.length; k++) {
      if (!group.valid[k]) continue;
      const index = group.indexes[k]!;
      groupOf[index] = g;
      itemOf[index] = k;
      total += offsets[k + 1]! - offsets[k]!;
    }
  });
  const data = Buffer.allocUnsafe(total);
  const offsets = new Int32Array(count + 1);
  const validity = new Uint8Array(Math.ceil(count / 8));
  let at = 0;
  for (let i = 0; i < count; i++) {
    offsets[i] = at;
    const g = groupOf[i]!;
    if (g < 0) continue;
    validity[i >> 3]! |= 1 << (i & 7);
    const { data: source, offsets: sourceOffsets } = groups[g]!.plaintexts;
    const k = itemOf[i]!;
    for (let b = sourceOffsets[k]!, end = sourceOffsets[k + 1]!; b < end; b++) data[at++] = source[b]!;
  }
  offsets[count] = at;
  return { data, offsets, validity };
}

/**
 * The answer as the string path's decoding gives it: a plaintext that is not UTF-8 (only a holder of the key can make
 * one; pseudonymize takes well-formed text only) is decoded with U+FFFD for each ill-formed sequence, as
 * `toString('utf8')` does, so an Arrow Utf8 column never carries bytes that are not UTF-8.
 */
function wellFormedUtf8(texts: PackedTexts): PackedTexts {
  const { offsets, validity } = texts;
  const count = offsets.length - 1;
  const data = asBuffer(texts.data);
  const whole = data.subarray(offsets[0], offsets[count]);
  if (isAscii(whole) || (isUtf8(whole) && boundariesOnCharacterStarts(data, offsets))) return texts;
  const items: Uint8Array[] = [];
  for (let i = 0; i < count; i++) items.push(Buffer.from(data.toString('utf8', offsets[i], offsets[i + 1]), 'utf8'));
  const packed = packByteArrays(items);
  return { data: packed.data, offsets: packed.offsets, validity };
}

/** A UTF-8 continuation byte (10xxxxxx) never starts a character: valid UTF-8 cut only there is valid item by item. */
function boundariesOnCharacterStarts(data: Uint8Array, offsets: Int32Array): boolean {
  for (let i = 1; i + 1 < offsets.length; i++) {
    const position = offsets[i]!;
    if (position < data.length && (data[position]! & 0xc0) === 0x80) return false;
  }
  return true;
}

function maxItemLength(packed: PackedBytes): number {
  let max = 0;
  for (let i = 0; i + 1 < packed.offsets.length; i++) max = Math.max(max, packed.offsets[i + 1]! - packed.offsets[i]!);
  return max;
}
