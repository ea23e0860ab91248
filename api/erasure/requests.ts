/**
 * Filing and reading erasure requests (the core behind /v1/erasure-requests, for both transports).
 *
 * A subject is named by an identifier in a context (`{context, value}`) or by a pseudonym
 * (`{context, pseudonym, keyVersion?, confirm?}`). Either way it is stored as its deterministic pseudonyms under every
 * key version readable now; the identifier exists only in memory while they are computed. Filing is
 * idempotent: the same reference with subjects already filed under it returns the existing request.
 *
 * An FPE (FF1) pseudonym is not authenticated: any string of the right length and alphabet decrypts to some
 * plausible identifier, so a one-character typo names another person (and a pseudonym of one FPE context decrypts
 * under another). A subject named by FPE pseudonym must therefore carry `confirm`, the identifier's last 4
 * characters or the whole identifier, which the officer can check against the request; the pseudonym is decrypted
 * and compared in constant time, and a missing or wrong confirmation is refused (422) before anything is filed,
 * naming subjects by index only. AES-SIV pseudonyms need none: a changed or other-context one fails authentication.
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Principal } from '../auth/roles.ts';
import { PlatformError, RequestError } from '../errors.ts';
import type { PolicySet } from '../policy/policy.ts';
import { extensionOutcome, type DeadlineExtension, type ErasureLedger, type ErasureRequest, type ErasureStatus, type ErasureSubject, type ExtensionMonths, type LegalGround } from './ledger.ts';
import type { TableRegistry } from './registry.ts';
import type { ErasureSuppression } from './suppression.ts';

export const MAX_SUBJECTS_PER_REQUEST = 1000;

/** A data subject as filed: an identifier in a context, or a pseudonym (with its key version for FPE). */
export type ErasureSubjectReference =
  | { readonly context: string; readonly value: string }
  | { readonly context: string; readonly pseudonym: string; readonly keyVersion?: number | undefined; readonly confirm?: string | undefined };

/** How many characters of the identifier's end `confirm` may carry instead of the whole identifier. */
export const CONFIRM_TAIL_CHARACTERS = 4;

/** A filing as the HTTP route has validated it (its schema is declared in api/http/routes.ts). */
export interface ErasureFiling {
  readonly reference: string;
  readonly reason: LegalGround;
  readonly subjects: readonly ErasureSubjectReference[];
}

/** An extension of a request's deadline as the HTTP route has validated it. */
export interface ExtensionFiling {
  readonly reason: string;
  readonly months: ExtensionMonths;
}

/**
 * GDPR Art. 12(3): an answer "within one month of receipt", extendable "by two further months where necessary".
 * Calendar months from filing (in UTC), counted from the filing date each time: a filing on 31 January is due on the
 * last day of February, or on 30 April once extended by two months.
 */
/**
 * Art. 12(3) extends the one-month period: an extension asked for once it has run out would hide that the request
 * went overdue, so it is refused (409 extension-refused).
 */
export function checkWithinFirstMonth(filedAt: string, now: number = Date.now()): void {
  if (now > Date.parse(deadlineOf(filedAt))) throw new PlatformError('extension-refused', 'the one-month deadline has passed: it can be extended only before it runs out');
}

export function deadlineOf(filedAt: string, extension?: Pick<DeadlineExtension, 'months'>): string {
  const filed = new Date(filedAt);
  const due = new Date(filed.getTime());
  due.setUTCDate(1);
  due.setUTCMonth(due.getUTCMonth() + 1 + (extension?.months ?? 0));
  const lastDay = new Date(Date.UTC(due.getUTCFullYear(), due.getUTCMonth() + 1, 0)).getUTCDate();
  due.setUTCDate(Math.min(filed.getUTCDate(), lastDay));
  return due.toISOString();
}

/** What the API shows of a request: counts and contexts of subjects, never their pseudonyms. */
export interface ErasureRequestView {
  readonly id: string;
  readonly reference: string;
  readonly reason: string;
  readonly status: ErasureStatus;
  readonly attempts: number;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly subjects: { readonly count: number; readonly contexts: readonly string[] };
  readonly tables: ErasureRequest['tables'];
  /** When the answer is due: one month from filing, plus the extension's months. */
  readonly deadline: string;
  readonly extension?: DeadlineExtension;
  readonly error?: string;
  readonly certificate?: unknown;
}

export function viewOf(request: ErasureRequest): ErasureRequestView {
  return {
    id: request.id,
    reference: request.reference,
    reason: request.reason,
    status: request.status,
    attempts: request.attempts,
    createdAt: request.createdAt,
    updatedAt: request.updatedAt,
    subjects: { count: request.subjects.length, contexts: [...new Set(request.subjects.map((s) => s.context))].sort() },
    tables: request.tables,
    deadline: deadlineOf(request.createdAt, request.extension),
    ...(request.extension ? { extension: request.extension } : {}),
    ...(request.error ? { error: request.error } : {}),
    ...(request.certificate !== undefined ? { certificate: request.certificate } : {}),
  };
}

export function actorOf(principal: Principal): string {
  return `${principal.kind}:${principal.id}`;
}

export class ErasureRequests {
  constructor(
    private readonly ledger: ErasureLedger,
    private readonly suppression: ErasureSuppression,
    private readonly policies: PolicySet,
    private readonly registry: TableRegistry,
  ) {}

  /** Files a request, or returns the one already filed for these subjects under this reference. */
  async file(principal: Principal, filing: ErasureFiling): Promise<{ request: ErasureRequest; created: boolean }> {
    const { reference, reason, subjects: named } = filing;
    const subjects = this.resolveAll(named);
    // The same request again: same reference, and every subject already filed under it (any key version).
    const isSame = (existing: ErasureRequest): boolean => {
      const filed = new Set(existing.subjects.flatMap((s) => s.pseudonyms.map((p) => `${s.context}\u0000${p}`)));
      return subjects.every((s) => s.pseudonyms.some((p) => filed.has(`${s.context}\u0000${p}`)));
    };
    const id = `er-${randomUUID()}`;
    const tables = this.registry.tablesFor(subjects.map((s) => s.context)).map((t) => ({ table: t.name, status: 'pending' as const }));
    const filed = await this.ledger.create({ id, reference, reason, filedBy: actorOf(principal), subjects, tables }, { actor: actorOf(principal), action: 'erasure.filed', requestId: id, outcome: 'received' }, isSame);
    this.suppression.noteFiled(subjects); // withheld by this process at once, not after the next ledger read
    return filed;
  }

  async get(id: string): Promise<ErasureRequest> {
    const request = /^er-[0-9a-f-]{36}$/.test(id) ? await this.ledger.get(id) : undefined;
    if (!request) throw new PlatformError('not-found', 'no erasure request with this id');
    return request;
  }

  /**
   * Extends the request's deadline by `months` with the officer's reason, once, within the first month (409
   * extension-refused after that, once it is verified, or once the month has run out). The audit chain gets the months and the new deadline; the reason stays with the request.
   */
  async extend(principal: Principal, id: string, filing: ExtensionFiling): Promise<ErasureRequest> {
    const request = await this.get(id);
    checkWithinFirstMonth(request.createdAt);
    // The deadline counts from the filing date, which never changes: computed from this read, it holds at the write.
    const deadline = deadlineOf(request.createdAt, filing);
    const extension = { months: filing.months, reason: filing.reason, by: actorOf(principal) };
    return this.ledger.extend(request.id, extension, { actor: actorOf(principal), action: 'erasure.extended', requestId: request.id, outcome: extensionOutcome(extension, deadline) });
  }

  /** Requests, oldest first; `status` as the route's query schema has checked it. */
  async list(status: ErasureStatus | undefined): Promise<ErasureRequest[]> {
    return this.ledger.list(status);
  }

  /**
   * Every subject's pseudonyms under every readable key version, for a filing or a lift. 400s say which subject and
   * why; FPE pseudonyms without `confirm` are refused first (422 confirmation-required), then those whose identifier
   * does not match it (422 confirmation-mismatch), each listing every such subject by index and nothing filed.
   */
  resolveAll(named: readonly ErasureSubjectReference[]): ErasureSubject[] {
    const unconfirmed = named.flatMap((subject, index) => ('pseudonym' in subject && !subject.confirm && this.policies.resolve(subject.context).transform === 'fpe' ? [index] : []));
    if (unconfirmed.length > 0) {
      throw new PlatformError(
        'confirmation-required',
        `${fieldList(unconfirmed, 'confirm')}: required for a pseudonym of an FPE context, which is not authenticated (a mistyped one names another person): the identifier's last ${CONFIRM_TAIL_CHARACTERS} characters, or the whole identifier`,
        unconfirmed.map((index) => ({ index, reason: 'confirmation-required' })),
      );
    }
    const mismatched: number[] = [];
    const subjects = named.map((subject, index) => {
      const { resolved, confirmed } = this.resolve(subject, index);
      if (!confirmed) mismatched.push(index);
      return resolved;
    });
    if (mismatched.length > 0) {
      throw new PlatformError(
        'confirmation-mismatch',
        `${fieldList(mismatched, 'pseudonym')}: the identifier does not end with (or equal) its confirm: check the pseudonym, its keyVersion and the confirmation; nothing was filed`,
        mismatched.map((index) => ({ index, reason: 'confirmation-mismatch' })),
      );
    }
    return subjects;
  }

  /** One subject's pseudonyms under every readable key version, and whether its `confirm` (when given) matches. */
  private resolve(subject: ErasureSubjectReference, index: number): { resolved: ErasureSubject; confirmed: boolean } {
    const where = `subjects[${index}]`;
    const policy = this.policies.resolve(subject.context); // unknown-context: 400
    if ('value' in subject) {
      if (subject.value.length === 0) throw new RequestError('validation-failed', `${where}.value: must not be empty`);
      return { resolved: { context: subject.context, pseudonyms: this.everyVersion(subject.context, subject.value, where) }, confirmed: true };
    }
    const answer = this.suppression.resolveForErasure(subject.context, [subject.pseudonym], subject.keyVersion);
    const failure = answer.errors[0]?.reason;
    if (failure === 'irreversible') {
      // A hash token: itself is all there is, and there is no identifier to hold a confirmation against.
      if (subject.confirm) throw new RequestError('validation-failed', `${where}.confirm: a hash token cannot be reversed, so it cannot be confirmed: leave confirm out`);
      return { resolved: { context: subject.context, pseudonyms: [subject.pseudonym] }, confirmed: true };
    }
    if (failure !== undefined || answer.values[0] == null) {
      throw new RequestError('validation-failed', `${where}.pseudonym: cannot be resolved (${failure === 'malformed' || failure === 'authentication-failed' ? 'malformed, or from another context' : failure ?? 'malformed'})`);
    }
    const value = answer.values[0];
    // Required for FPE (checked by the caller); checked on an AES-SIV pseudonym too when the officer gives one.
    const confirmed = subject.confirm ? confirms(value, subject.confirm) : true;
    if (!confirmed) return { resolved: { context: subject.context, pseudonyms: [] }, confirmed };
    const pseudonyms = this.everyVersion(subject.context, value, where);
    // An FPE pseudonym depends on the version it was made with; keep the one presented as well.
    return { resolved: { context: subject.context, pseudonyms: policy.transform === 'fpe' ? [...new Set([...pseudonyms, subject.pseudonym])] : pseudonyms }, confirmed };
  }

  private everyVersion(context: string, value: string, where: string): string[] {
    try {
      return this.suppression.pseudonymsInEveryVersion(context, [value])[0]!;
    } catch (error) {
      if (error instanceof RequestError) throw new RequestError('validation-failed', `${where}.value: ${error.details?.[0]?.reason ?? 'cannot be pseudonymized in this context'}`);
      throw error;
    }
  }
}

/** `subjects[0].confirm, subjects[3].confirm` (the first few, then a count): fields by index, never their contents. */
function fieldList(indexes: readonly number[], field: string): string {
  const shown = indexes.slice(0, 5).map((index) => `subjects[${index}].${field}`);
  return indexes.length > shown.length ? `${shown.join(', ')} and ${indexes.length - shown.length} more` : shown.join(', ');
}

/**
 * Whether `confirm` is the whole identifier or its last CONFIRM_TAIL_CHARACTERS characters (code points, as FF1
 * counts them). Both are compared, always, as SHA-256 digests with timingSafeEqual: the time taken says nothing of
 * how much of either matched.
 */
function confirms(value: string, confirm: string): boolean {
  const tail = Array.from(value).slice(-CONFIRM_TAIL_CHARACTERS).join('');
  const whole = sameInConstantTime(confirm, value);
  const end = sameInConstantTime(confirm, tail);
  return whole || end;
}

function sameInConstantTime(a: string, b: string): boolean {
  const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();
  return timingSafeEqual(digest(a), digest(b));
}
