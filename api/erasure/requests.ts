/**
 * Filing and reading erasure requests (the core behind /v1/erasure-requests, for both transports).
 *
 * A subject is named by an identifier in a context (`{context, value}`) or by a pseudonym
 * (`{context, pseudonym, keyVersion?}`). Either way it is stored as its deterministic pseudonyms under every
 * key version readable now; the identifier exists only in memory while they are computed. Filing is
 * idempotent: the same reference with subjects already filed under it returns the existing request.
 */
import { randomUUID } from 'node:crypto';
import type { Principal } from '../auth/roles.ts';
import { PlatformError, RequestError } from '../errors.ts';
import type { PolicySet } from '../policy/policy.ts';
import type { ErasureLedger, ErasureRequest, ErasureStatus, ErasureSubject, LegalGround } from './ledger.ts';
import type { TableRegistry } from './registry.ts';
import type { ErasureSuppression } from './suppression.ts';

export const MAX_SUBJECTS_PER_REQUEST = 1000;

/** A data subject as filed: an identifier in a context, or a pseudonym (with its key version for FPE). */
export type ErasureSubjectReference =
  | { readonly context: string; readonly value: string }
  | { readonly context: string; readonly pseudonym: string; readonly keyVersion?: number | undefined };

/** A filing as the HTTP route has validated it (its schema is declared in api/http/routes.ts). */
export interface ErasureFiling {
  readonly reference: string;
  readonly reason: LegalGround;
  readonly subjects: readonly ErasureSubjectReference[];
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
    const subjects = named.map((subject, index) => this.resolve(subject, index));
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

  /** Requests, oldest first; `status` as the route's query schema has checked it. */
  async list(status: ErasureStatus | undefined): Promise<ErasureRequest[]> {
    return this.ledger.list(status);
  }

  /** The subject's pseudonyms under every readable key version; 400s say which subject and why. Lifts name subjects the same way. */
  resolve(subject: ErasureSubjectReference, index: number): ErasureSubject {
    const where = `subjects[${index}]`;
    const policy = this.policies.resolve(subject.context); // unknown-context: 400
    if ('value' in subject) {
      if (subject.value.length === 0) throw new RequestError('validation-failed', `${where}.value: must not be empty`);
      return { context: subject.context, pseudonyms: this.everyVersion(subject.context, subject.value, where) };
    }
    const answer = this.suppression.resolveForErasure(subject.context, [subject.pseudonym], subject.keyVersion);
    const failure = answer.errors[0]?.reason;
    if (failure === 'irreversible') return { context: subject.context, pseudonyms: [subject.pseudonym] }; // a hash token: itself is all there is
    if (failure !== undefined || answer.values[0] == null) {
      throw new RequestError('validation-failed', `${where}.pseudonym: cannot be resolved (${failure === 'malformed' || failure === 'authentication-failed' ? 'malformed, or from another context' : failure ?? 'malformed'})`);
    }
    const pseudonyms = this.everyVersion(subject.context, answer.values[0], where);
    // An FPE pseudonym depends on the version it was made with; keep the one presented as well.
    return { context: subject.context, pseudonyms: policy.transform === 'fpe' ? [...new Set([...pseudonyms, subject.pseudonym])] : pseudonyms };
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
