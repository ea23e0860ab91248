/**
 * Erased stays erased across key rotation and shredding. A subject is filed as its pseudonyms under the key versions
 * readable at filing, and suppression matches a value by computing its pseudonyms under the versions readable now:
 * once the versions it was filed under are destroyed, nothing matches any more, and the value would be pseudonymized
 * (and reidentified) under the active version again. So each suppressed subject gets its pseudonyms under every
 * readable version, the active one included, added to the ledger (`ErasureLedger.addPseudonyms`), before anything it
 * was filed under is destroyed:
 *
 * - AES-SIV (`deterministic`) contexts: one of its pseudonyms that still decrypts gives the identifier, which is
 *   encrypted again under the other readable versions, here, in memory: it is never returned, stored or logged.
 * - FF1 (`fpe`) contexts: a pseudonym carries no version and any string of the alphabet decrypts under any key, so the
 *   identifier is the candidate (a pseudonym decrypted under a readable version) whose pseudonyms under the readable
 *   versions include two of the subject's own; a wrong candidate matches only the one it was decrypted from. A
 *   subject holding one readable pseudonym only (filed before a single rotation) has two candidates, its newest
 *   pseudonym decrypted under either version, whose active pseudonyms are that pseudonym itself and the one wanted.
 *   With more versions than that between filing and now (rotated twice with no coverage between), the candidates are
 *   not told apart, and nothing is guessed: the subject is reported underived.
 * - Keyed-hash (`hash`) contexts: a token cannot be reversed, and only the identifier gives another version's. Such a
 *   subject is reported underived, with the versions its tokens are under, and `keys destroy` refuses to destroy the
 *   last of them (api/cli.ts). Filing the subject again by identifier gives it tokens under the versions readable
 *   then; each filing sharing a token with another gets that one's tokens as well (they name one subject).
 *
 * Who runs it: `keys destroy` before it destroys (api/cli.ts), and the erasure worker whenever it sees a keyring it
 * has not covered yet, on the server's loop and in the Lambda erasure step alike (worker.ts).
 * Subjects whose suppression was lifted are left as they are. Reports carry counts, contexts and versions only.
 */
import type { PseudonymEngine } from '../engine/engine.ts';
import { fpeRejectReason } from '../engine/ff1.ts';
import { parsePseudonym } from '../engine/pseudonymFormat.ts';
import type { Keyring, KeyVersion } from '../keyring/keyring.ts';
import type { ContextPolicy, PolicySet } from '../policy/policy.ts';
import type { ErasureLedger, ErasureRequest, ErasureSubject, SubjectPseudonymAddition } from './ledger.ts';

/** A suppressed subject whose pseudonyms under the active version could not be derived here. */
export interface UnderivedSubject {
  readonly context: string;
  /** The readable key versions its pseudonyms are under, when their text says (AES-SIV, keyed hash); undefined for FF1. */
  readonly versions: readonly number[] | undefined;
}

export interface CoverageReport {
  /** The active key version the subjects were covered for. */
  readonly keyVersion: number;
  /** Requests, subjects and pseudonyms added to. */
  readonly requests: number;
  readonly subjects: number;
  readonly pseudonyms: number;
  readonly underived: readonly UnderivedSubject[];
}

/** Suppressions that would stop matching if `version` were destroyed: how many, and in which contexts (never subjects). */
export interface DestroyBlockers {
  readonly suppressions: number;
  readonly contexts: readonly string[];
}

type Derivation = { readonly kind: 'derived'; readonly pseudonyms: readonly string[] } | { readonly kind: 'underived'; readonly versions: readonly number[] | undefined };

export class SuppressionCoverage {
  /** The keyring generation every request was last covered for (-1: none yet). */
  private coveredGeneration = -1;

  constructor(
    private readonly ledger: ErasureLedger,
    private readonly engine: PseudonymEngine,
    private readonly keyring: Keyring,
    private readonly policies: PolicySet,
  ) {}

  /**
   * Adds to each suppressed subject of `requests` (default: every request in the ledger) its pseudonyms under the
   * readable versions it lacks. Running it again adds nothing and writes nothing.
   */
  async cover(actor: string, requests?: readonly ErasureRequest[]): Promise<CoverageReport> {
    const active = this.keyring.active();
    const readable = this.keyring.readable();
    const erased = new Map<string, ReadonlySet<string>>();
    const suppressed: { request: ErasureRequest; index: number; subject: ErasureSubject }[] = [];
    for (const request of requests ?? (await this.ledger.list())) {
      for (const [index, subject] of request.subjects.entries()) {
        let set = erased.get(subject.context);
        if (!set) erased.set(subject.context, (set = await this.ledger.erasedPseudonyms(subject.context)));
        if (subject.pseudonyms.some((p) => set.has(p))) suppressed.push({ request, index, subject }); // a lifted one is left as it is
      }
    }
    // A subject filed more than once (a keyed-hash one filed again after a rotation, say) is one subject: what another
    // filing sharing a pseudonym with it holds is its own too, and is added to it.
    const filings = new Map<string, ErasureSubject[]>();
    for (const { subject } of suppressed) {
      for (const pseudonym of subject.pseudonyms) {
        const key = `${subject.context}\u0000${pseudonym}`;
        filings.set(key, [...(filings.get(key) ?? []), subject]);
      }
    }
    const linked = (subject: ErasureSubject): string[] => [...new Set(subject.pseudonyms.flatMap((p) => (filings.get(`${subject.context}\u0000${p}`) ?? []).flatMap((other) => other.pseudonyms)))];

    const additions = new Map<ErasureRequest, SubjectPseudonymAddition[]>();
    const underived: UnderivedSubject[] = [];
    for (const { request, index, subject } of suppressed) {
      const derivation = this.derive(subject, readable, active);
      const held = new Set(subject.pseudonyms);
      let pseudonyms: readonly string[];
      if (derivation.kind === 'derived') {
        pseudonyms = derivation.pseudonyms;
      } else {
        pseudonyms = linked(subject).filter((p) => !held.has(p));
        const versions = derivation.versions && this.readableVersionsOf([...subject.pseudonyms, ...pseudonyms]);
        underived.push({ context: subject.context, versions });
      }
      if (pseudonyms.length > 0) additions.set(request, [...(additions.get(request) ?? []), { subject: index, pseudonyms }]);
    }
    let requestCount = 0;
    let subjectCount = 0;
    let pseudonymCount = 0;
    for (const [request, added] of additions) {
      const result = await this.ledger.addPseudonyms(request.id, added, { actor, keyVersion: active.version });
      if (result.added === 0) continue;
      requestCount++;
      subjectCount += added.length;
      pseudonymCount += result.added;
    }
    return { keyVersion: active.version, requests: requestCount, subjects: subjectCount, pseudonyms: pseudonymCount, underived };
  }

  /**
   * For the worker's rounds: every request when the keyring changed since the last full pass (a rotation, a version
   * destroyed, start-up), otherwise only `requests` (a round's received ones: a filing by an instance whose keyring was
   * still the old one lacks the new version). Undefined when nothing was looked at (no keyring loaded yet).
   */
  async coverIfNeeded(actor: string, requests: readonly ErasureRequest[]): Promise<{ report: CoverageReport; full: boolean } | undefined> {
    if (!this.keyring.loaded) return undefined;
    const generation = this.keyring.generation;
    const full = generation !== this.coveredGeneration;
    if (!full && requests.length === 0) return undefined;
    const report = await this.cover(actor, full ? undefined : requests);
    if (full) this.coveredGeneration = generation;
    return { report, full };
  }

  /** The subject's pseudonyms under readable versions it does not hold, or why they cannot be derived. */
  private derive(subject: ErasureSubject, readable: readonly KeyVersion[], active: KeyVersion): Derivation {
    let policy: ContextPolicy;
    try {
      policy = this.policies.resolve(subject.context);
    } catch {
      return { kind: 'underived', versions: undefined }; // a context no longer in the policy file
    }
    const held = new Set(subject.pseudonyms);
    const missing = (pseudonyms: readonly string[]): string[] => [...new Set(pseudonyms)].filter((p) => !held.has(p));
    if (policy.transform === 'hash') return { kind: 'underived', versions: this.readableVersionsOf(subject.pseudonyms) };
    if (policy.transform === 'deterministic') {
      // AES-SIV is authenticated: whichever pseudonym decrypts (an AWS sample one too) gives the identifier.
      const value = this.engine.reidentify(subject.context, subject.pseudonyms).values.find((v): v is string => typeof v === 'string');
      if (value === undefined) return { kind: 'underived', versions: this.readableVersionsOf(subject.pseudonyms) };
      return { kind: 'derived', pseudonyms: missing(this.engine.pseudonymsUnder(readable, subject.context, [value], { check: false })[0]!) };
    }
    // FF1: candidates are the subject's pseudonyms (those of the alphabet) decrypted under each readable version.
    const own = subject.pseudonyms.filter((p) => fpeRejectReason(policy.alphabet, policy.maxLength, p) === undefined);
    if (own.length === 0) return { kind: 'underived', versions: undefined };
    const candidates = (pseudonyms: readonly string[]): string[] =>
      [...new Set(readable.flatMap((key) => this.engine.reidentify(subject.context, pseudonyms, { keyVersion: key.version }).values.filter((v): v is string => typeof v === 'string')))];
    const values = candidates(own);
    const under = this.engine.pseudonymsUnder(readable, subject.context, values, { check: false });
    const scores = under.map((pseudonyms) => pseudonyms.filter((p) => held.has(p)).length);
    const best = Math.max(...scores);
    if (best >= 2) {
      const chosen = under.filter((_, k) => scores[k] === best);
      return chosen.length === 1 ? { kind: 'derived', pseudonyms: missing(chosen[0]!) } : { kind: 'underived', versions: undefined };
    }
    // One readable pseudonym of its own: the newest, decrypted under each version; only the active version's pseudonym is added.
    const newest = candidates([own[own.length - 1]!]);
    const activeIndex = readable.indexOf(active);
    const wanted = missing(this.engine.pseudonymsUnder(readable, subject.context, newest, { check: false }).map((pseudonyms) => pseudonyms[activeIndex]!));
    return wanted.length <= 1 ? { kind: 'derived', pseudonyms: wanted } : { kind: 'underived', versions: undefined };
  }

  /** The readable key versions the subject's pseudonyms carry in their text (AES-SIV and keyed-hash pseudonyms do). */
  private readableVersionsOf(pseudonyms: readonly string[]): number[] {
    const versions = new Set<number>();
    for (const pseudonym of pseudonyms) {
      const parsed = parsePseudonym(pseudonym);
      if (parsed && this.keyring.lookup(parsed.version).kind === 'usable') versions.add(parsed.version);
    }
    return [...versions].sort((a, b) => a - b);
  }
}

/**
 * The suppressions `keys destroy --version N` must not leave unmatched: subjects not derived (keyed hash, mostly)
 * whose readable pseudonyms are all under `version`, and FF1 subjects not derived (their versions unknown).
 */
export function destroyBlockers(report: CoverageReport, version: number): DestroyBlockers {
  const blocking = report.underived.filter((s) => (s.versions === undefined ? true : s.versions.length > 0 && s.versions.every((v) => v === version)));
  return { suppressions: blocking.length, contexts: [...new Set(blocking.map((s) => s.context))].sort() };
}
