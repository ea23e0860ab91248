/**
 * Lifting suppression (the core behind /v1/erasure-lifts, for both transports): a privacy officer, with a new
 * lawful basis (a returning customer who consents again, say), lets subjects filed for erasure be processed again.
 *
 * What a lift does and does not do:
 * - From its commit on, pseudonymize hands out the subjects' pseudonyms again and reidentify answers for them: at
 *   once in this process, in other processes within the suppression cache bound (PSEUDO_ERASURE_CACHE_SECONDS).
 * - Data already erased stays erased: nothing is restored, and erasure requests and certificates are unchanged.
 * - A later filing naming a subject suppresses them again: the latest event wins.
 * - Refused as a whole when a subject is not suppressed (409 not-suppressed) or an erasure request naming them
 *   has not finished (409 erasure-pending: the run would delete what is written after the lift), by index only.
 * - A subject named by FPE pseudonym needs `confirm` as in a filing (422 confirmation-required or -mismatch), checked
 *   before the suppression state, so lifting the wrong person by a mistyped pseudonym is refused the same way.
 *
 * Subjects are named as in a filing and stored the same way (pseudonyms under every readable key version). The
 * audit entry (action `erasure.lifted`) carries the count, reason and reference in the hash chain, never a subject.
 */
import { randomUUID } from 'node:crypto';
import type { Principal } from '../auth/roles.ts';
import { liftOutcome, type ErasureLedger, type LiftReason, type SuppressionLift } from './ledger.ts';
import { actorOf, type ErasureRequests, type ErasureSubjectReference } from './requests.ts';
import type { ErasureSuppression } from './suppression.ts';

/** Subjects per lift: a lift commits in one transaction (DynamoDB takes 100 items in one). */
export const MAX_SUBJECTS_PER_LIFT = 100;

/** A lift as the HTTP route has validated it (its schema is declared in api/http/routes.ts). */
export interface LiftFiling {
  readonly reference: string;
  readonly reason: LiftReason;
  readonly subjects: readonly ErasureSubjectReference[];
}

/** What the API shows of a lift: counts and contexts of subjects, never their pseudonyms. */
export interface LiftView {
  readonly id: string;
  readonly reference: string;
  readonly reason: LiftReason;
  readonly createdAt: string;
  readonly subjects: { readonly count: number; readonly contexts: readonly string[] };
}

export function liftViewOf(lift: SuppressionLift): LiftView {
  return {
    id: lift.id,
    reference: lift.reference,
    reason: lift.reason,
    createdAt: lift.createdAt,
    subjects: { count: lift.subjects.length, contexts: [...new Set(lift.subjects.map((s) => s.context))].sort() },
  };
}

export class SuppressionLifts {
  constructor(
    private readonly ledger: ErasureLedger,
    private readonly suppression: ErasureSuppression,
    private readonly requests: ErasureRequests,
  ) {}

  /** Lifts suppression of the subjects, with its audit entry; 400 for a subject that cannot be resolved, 409 as above. */
  async lift(principal: Principal, filing: LiftFiling): Promise<SuppressionLift> {
    // Named and checked as in a filing: an FPE pseudonym needs its confirmation here too (422 without or on a mismatch).
    const subjects = this.requests.resolveAll(filing.subjects);
    const id = `lf-${randomUUID()}`;
    const lift = { id, reference: filing.reference, reason: filing.reason, liftedBy: actorOf(principal), subjects };
    const lifted = await this.ledger.lift(lift, { actor: actorOf(principal), action: 'erasure.lifted', requestId: id, outcome: liftOutcome(lift) });
    this.suppression.noteLifted(subjects); // answered again by this process at once, not after the next ledger read
    return lifted;
  }

  /** Every lift, oldest first. */
  async list(): Promise<SuppressionLift[]> {
    return this.ledger.lifts();
  }
}
