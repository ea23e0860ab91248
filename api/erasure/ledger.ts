/**
 * The erasure ledger: right-to-be-forgotten requests, their states and certificates, the pseudonyms they
 * erase, and the tamper-evident audit log. An interface, so that another store (DynamoDB for Lambda, say)
 * can follow the SQLite one (sqliteLedger.ts); both run the same contract suite.
 *
 * The ledger never holds an identifier: subjects are kept as their pseudonyms under every key version
 * readable when the request was filed, and under the versions made active since (`addPseudonyms`, coverage.ts), so
 * a subject stays suppressed once the versions it was filed under are destroyed.
 */
import { createHash } from 'node:crypto';
import { LedgerError, PlatformError } from '../errors.ts';

export const ERASURE_STATUSES = ['received', 'running', 'verified', 'failed'] as const;
export type ErasureStatus = (typeof ERASURE_STATUSES)[number];

/** Legal grounds as codes, not free text: a note could carry the very personal data being erased. */
export const LEGAL_GROUNDS = [
  'gdpr-art17-1a',
  'gdpr-art17-1b',
  'gdpr-art17-1c',
  'gdpr-art17-1d',
  'gdpr-art17-1e',
  'gdpr-art17-1f',
  'ccpa-1798.105',
] as const;
export type LegalGround = (typeof LEGAL_GROUNDS)[number];

/**
 * Lawful bases for processing a subject again once their erasure was filed, as codes (a note could carry
 * personal data): `consent` GDPR Art. 6(1)(a) (the returning customer who consents again), `contract` Art. 6(1)(b),
 * `legal-obligation` Art. 6(1)(c), and `filed-in-error` (the subject was named by mistake).
 */
export const LIFT_REASONS = ['consent', 'contract', 'legal-obligation', 'filed-in-error'] as const;
export type LiftReason = (typeof LIFT_REASONS)[number];

export interface ErasureSubject {
  readonly context: string;
  /** The subject's deterministic pseudonyms, one per key version readable at filing, oldest first. */
  readonly pseudonyms: readonly string[];
}

export interface TableProgress {
  readonly table: string;
  readonly status: 'pending' | 'running' | 'verified' | 'failed';
  readonly detail?: string;
}

/** Where a table's status stands in a run; a report never lowers it (verified and failed are both final). */
export const PROGRESS_RANK: Readonly<Record<TableProgress['status'], number>> = { pending: 0, running: 1, verified: 2, failed: 2 };

/**
 * A run's report merged into what a request shows, table by table: a reported table replaces the shown one only when
 * it is further along or at the same status (a newer detail). Tables the request does not name are ignored, so a
 * report from an earlier or overlapping writer can never move a table back. The stores merge inside their write.
 */
export function mergeProgress(shown: readonly TableProgress[], reported: readonly TableProgress[]): TableProgress[] {
  const byTable = new Map(reported.map((t) => [t.table, t]));
  return shown.map((t) => {
    const report = byTable.get(t.table);
    return report && (PROGRESS_RANK[report.status] > PROGRESS_RANK[t.status] || report.status === t.status) ? report : t;
  });
}

export interface ErasureRequest {
  readonly id: string;
  readonly reference: string;
  readonly reason: LegalGround;
  readonly filedBy: string;
  readonly status: ErasureStatus;
  readonly attempts: number;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly subjects: readonly ErasureSubject[];
  readonly tables: readonly TableProgress[];
  readonly runId?: string | undefined;
  /** The runner's handle of the submitted run (an EMR step id), kept while the request runs in that run. */
  readonly stepId?: string | undefined;
  readonly error?: string | undefined;
  readonly certificate?: unknown;
  /** The answer deadline's extension (GDPR Art. 12(3)), once per request. */
  readonly extension?: DeadlineExtension | undefined;
}

/** Months an answer deadline may be extended by: GDPR Art. 12(3) allows two further months at most. */
export const EXTENSION_MONTHS = [1, 2] as const;
export type ExtensionMonths = (typeof EXTENSION_MONTHS)[number];

/**
 * An extension of a request's answer deadline. The reason is the officer's own words, which Art. 12(3) has the
 * controller give the data subject; it is kept with the request and shown to officers only, never written into
 * the audit chain, a log line or an error.
 */
export interface DeadlineExtension {
  readonly months: ExtensionMonths;
  readonly reason: string;
  /** Who extended it: "api-key:<id>" or "person:<user name>". */
  readonly by: string;
  readonly at: string;
}

export type NewDeadlineExtension = Omit<DeadlineExtension, 'at'>;

/** Throws extension-refused when a request cannot be extended (checked inside the store's transaction). */
export function checkExtendable(current: ErasureRequest): void {
  if (current.extension) throw new PlatformError('extension-refused', "this erasure request's deadline was already extended: Art. 12(3) allows one extension");
  if (current.status === 'verified') throw new PlatformError('extension-refused', 'this erasure request is verified: there is no deadline left to extend');
}

/** The audit entry's outcome of an extension: months and the new deadline, never the reason's text. */
export function extensionOutcome(extension: NewDeadlineExtension, deadline: string): string {
  return `extended months=${extension.months} deadline=${deadline}`;
}

export type NewErasureRequest = Pick<ErasureRequest, 'id' | 'reference' | 'reason' | 'filedBy' | 'subjects' | 'tables'>;

export interface StatusChange {
  readonly status: ErasureStatus;
  readonly attempts?: number;
  readonly tables?: readonly TableProgress[];
  readonly runId?: string | undefined;
  readonly stepId?: string | undefined;
  readonly error?: string | undefined;
  readonly certificate?: unknown;
  /**
   * Move only if the request is still in this state (and run, when given); otherwise `ledger-conflict`. Two
   * processes advancing the same request (scheduled steps that overlap) then move it once, not twice.
   */
  readonly expected?: { readonly status: ErasureStatus; readonly runId?: string | undefined };
}

/** Throws ledger-conflict when the request is no longer where the change expects it (checked inside the store's transaction). */
export function checkExpected(current: ErasureRequest, change: StatusChange): void {
  const expected = change.expected;
  if (!expected) return;
  if (current.status !== expected.status || (expected.runId !== undefined && current.runId !== expected.runId)) {
    throw new LedgerError('the erasure request was moved by another writer meanwhile', 'ledger-conflict');
  }
}

/** A step id belongs to one run: kept while the request stays running in it, dropped by any other move. */
export function nextStepId(current: ErasureRequest, change: StatusChange): string | undefined {
  if (change.stepId !== undefined) return change.stepId;
  return change.status === 'running' && (change.runId ?? current.runId) === current.runId ? current.stepId : undefined;
}

/**
 * A lift of suppression: from its commit on, its subjects are no longer in `erasedPseudonyms` (pseudonymize hands
 * out their pseudonyms again, reidentify answers for them). Data already erased stays erased. A later filing
 * naming a subject suppresses them again: the latest event wins.
 */
export interface SuppressionLift {
  readonly id: string;
  readonly reference: string;
  readonly reason: LiftReason;
  readonly liftedBy: string;
  readonly createdAt: string;
  /** As filings store them: each subject's pseudonyms under every readable key version (never shown by the API). */
  readonly subjects: readonly ErasureSubject[];
}

export type NewSuppressionLift = Omit<SuppressionLift, 'createdAt'>;

/**
 * Why a subject of a lift cannot be lifted (the whole lift is refused, naming subjects by index):
 * `not-suppressed`: none of its pseudonyms is suppressed in its context; `erasure-pending`: an erasure request
 * naming it has not finished, and would delete what is written after the lift.
 */
export interface LiftRefusal {
  readonly index: number;
  readonly reason: 'not-suppressed' | 'erasure-pending';
}

/** The refusal of a lift, by the first reason any subject has (erasure-pending before not-suppressed). */
export function liftRefused(refusals: readonly LiftRefusal[]): PlatformError {
  const pending = refusals.filter((r) => r.reason === 'erasure-pending');
  if (pending.length > 0) {
    return new PlatformError('erasure-pending', `${pending.length} subject(s) are named by an erasure request that has not finished: lift them once it is verified or failed`, pending);
  }
  return new PlatformError('not-suppressed', `${refusals.length} subject(s) are not suppressed in their context`, refusals);
}

/** The audit entry's outcome of a lift: count, reason and reference in the hash chain, never a subject. */
export function liftOutcome(lift: NewSuppressionLift): string {
  return `lifted ${lift.subjects.length} reason=${lift.reason} reference=${lift.reference}`;
}

/**
 * Pseudonyms of a filed subject under key versions it was not filed under (a rotation since), derived inside the
 * service from one of its readable pseudonyms (erasure/coverage.ts): `subject` is its position in the request's
 * `subjects`.
 */
export interface SubjectPseudonymAddition {
  readonly subject: number;
  readonly pseudonyms: readonly string[];
}

/** Who adds them, and the key version they are for (the active one): the audit entry names these, never a pseudonym. */
export interface CoverageAudit {
  readonly actor: string;
  readonly keyVersion: number;
}

export const COVERAGE_ACTION = 'erasure.suppression-extended';

/** The audit entry of an addition: counts and the key version in the hash chain, never a subject or a pseudonym. */
export function coverageAuditInput(requestId: string, audit: CoverageAudit, pseudonyms: number, subjects: number): AuditInput {
  return { actor: audit.actor, action: COVERAGE_ACTION, requestId, outcome: `added ${pseudonyms} pseudonym(s) of ${subjects} subject(s) keyVersion=${audit.keyVersion}` };
}

/**
 * The pseudonyms of `additions` each subject does not hold yet, for subjects still suppressed (`isSuppressed`: some
 * of its pseudonyms is in its context's erased set): a lifted subject stays lifted. Computed by both stores inside
 * their transaction, from what they read there; the subjects as they will be stored, and what is new.
 */
export function newPseudonyms(
  subjects: readonly ErasureSubject[],
  additions: readonly SubjectPseudonymAddition[],
  isSuppressed: (subject: ErasureSubject) => boolean,
): { subjects: ErasureSubject[]; added: { context: string; pseudonyms: string[] }[] } {
  const next = [...subjects];
  const added: { context: string; pseudonyms: string[] }[] = [];
  for (const addition of additions) {
    const subject = next[addition.subject];
    if (!subject || !isSuppressed(subject)) continue;
    const held = new Set(subject.pseudonyms);
    const fresh = [...new Set(addition.pseudonyms)].filter((p) => !held.has(p));
    if (fresh.length === 0) continue;
    next[addition.subject] = { context: subject.context, pseudonyms: [...subject.pseudonyms, ...fresh] };
    added.push({ context: subject.context, pseudonyms: fresh });
  }
  return { subjects: next, added };
}

export interface AuditInput {
  /** "api-key:<id>", "person:<user name>" or "service" */
  readonly actor: string;
  readonly action: string;
  readonly requestId?: string | undefined;
  readonly outcome: string;
}

export interface AuditEntry extends AuditInput {
  readonly seq: number;
  readonly at: string;
  readonly previousHash: string;
  readonly hash: string;
}

export interface AuditVerification {
  readonly entries: number;
  readonly valid: boolean;
  /** The first entry whose hash or link does not hold, when invalid. */
  readonly brokenAt?: number;
}

/**
 * Every method is asynchronous, so that a networked store (DynamoDB) implements the same interface. Callers on a
 * request's hot path (reidentify withholding) do not await it per request: they read a cached set of erased
 * pseudonyms (erasure/suppression.ts) that is refreshed from `erasedPseudonyms` within a bound.
 */
export interface ErasureLedger {
  readonly description: string;
  /**
   * Stores the request and its audit entry in one transaction, unless a request with the same reference for
   * which `isSame` holds is already there (checked inside the transaction, so two processes filing the same
   * thing at once still get one request).
   */
  create(request: NewErasureRequest, audit: AuditInput, isSame?: (existing: ErasureRequest) => boolean): Promise<{ request: ErasureRequest; created: boolean }>;
  get(id: string): Promise<ErasureRequest | undefined>;
  list(status?: ErasureStatus): Promise<ErasureRequest[]>;
  /** Moves a request to a new state with its audit entry, in one transaction. */
  transition(id: string, change: StatusChange, audit: AuditInput): Promise<ErasureRequest>;
  /**
   * Extends a request's answer deadline, with its audit entry, in one transaction; refused (`extension-refused`)
   * when it was extended already or is verified, `not-found` when there is no such request.
   */
  extend(id: string, extension: NewDeadlineExtension, audit: AuditInput): Promise<ErasureRequest>;
  /**
   * Per-table progress of a request running in `runId` (not a state change: no audit entry), merged forward-only
   * (`mergeProgress`) inside the store's conditional write. Nothing is written when the request is not running in
   * that run any more (a late report of an earlier run, or one after the outcome was written).
   */
  updateTables(id: string, runId: string, tables: readonly TableProgress[]): Promise<void>;
  /** Every pseudonym filed for erasure in a context (all requests, whatever their state). */
  erasedPseudonyms(context: string): Promise<ReadonlySet<string>>;
  /**
   * Lifts suppression of the lift's subjects, stores the lift and its audit entry in one transaction (the entry in
   * the same hash chain). Refused as a whole (`not-suppressed`, `erasure-pending`, with subject indexes) when a
   * subject has no pseudonym suppressed in its context, or an erasure request naming it is received or running.
   */
  lift(lift: NewSuppressionLift, audit: AuditInput): Promise<SuppressionLift>;
  /**
   * Adds pseudonyms under further key versions to subjects of a filed request (whatever its state), so that a subject
   * stays suppressed once the versions it was filed under are destroyed: to the request's subjects (the erasure order
   * reads them) and to the erased set, in one transaction with one audit entry (`coverageAuditInput`: counts and key
   * version only). A subject whose suppression was lifted gets none (checked inside the transaction: a lift that
   * commits first wins). Idempotent: pseudonyms a subject holds already are skipped, and when nothing is new nothing
   * is written, audit entry included. `not-found` when there is no such request.
   */
  addPseudonyms(id: string, additions: readonly SubjectPseudonymAddition[], audit: CoverageAudit): Promise<{ request: ErasureRequest; added: number }>;
  /** Every lift, oldest first. */
  lifts(): Promise<SuppressionLift[]>;
  auditEntries(): Promise<AuditEntry[]>;
  close(): Promise<void>;
}

export const GENESIS_HASH = '0'.repeat(64);

/** SHA-256 over the previous hash and the entry's fields: changing, removing or reordering any entry breaks the chain. */
export function auditHash(previousHash: string, entry: Omit<AuditEntry, 'hash' | 'previousHash'>): string {
  const fields = [entry.seq, entry.at, entry.actor, entry.action, entry.requestId ?? null, entry.outcome];
  return createHash('sha256').update(previousHash).update('\n').update(JSON.stringify(fields)).digest('hex');
}

export function verifyAuditChain(entries: readonly AuditEntry[]): AuditVerification {
  let previous = GENESIS_HASH;
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    if (entry.seq !== i + 1 || entry.previousHash !== previous || auditHash(previous, entry) !== entry.hash) {
      return { entries: entries.length, valid: false, brokenAt: entry.seq };
    }
    previous = entry.hash;
  }
  return { entries: entries.length, valid: true };
}
