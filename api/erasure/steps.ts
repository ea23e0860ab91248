/**
 * Erasure without a long-running process: `advanceErasures` moves every open request one step from what the
 * ledger says, and returns without waiting for a job. Called on a schedule (lambda/erasureStep.ts on an
 * EventBridge rule), each call does at most, per run:
 *
 *   received                    → claim (conditional move to running with a new runId), submit, keep the step id
 *   running, no step id yet     → submit (a call that stopped between claim and submit; the runner finds a step
 *                                 of that run already on the cluster instead of adding another)
 *   running, step id            → check once: still running (show the job's per-table progress, forward only),
 *                                 or ended (read and check the certificate against contracts/, then verified,
 *                                 back to received for another attempt, or failed with the reason)
 *
 * Between calls everything lives in the ledger (runId, stepId, attempts, tables) and in the run's S3 folder
 * (order, progress, certificate), so any instance can take the next step. Every move is conditional on the
 * request still being where this call read it (StatusChange.expected): two overlapping calls claim a request
 * once and submit its run once; the slower one is told ledger-conflict and leaves it.
 *
 * The moves, the order, progress and the outcome's log lines and metrics are the server worker's own
 * (worker.ts): one implementation, driven either by a waiting loop (the server) or by these steps.
 */
import { randomUUID } from 'node:crypto';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { ErasureLedger, ErasureRequest } from './ledger.ts';
import type { SteppedErasureRunner } from './runner.ts';
import type { ErasureWorker } from './worker.ts';

/** What one call did, by run (ids only): for the invocation's result and its log line. */
export interface ErasureStepSummary {
  /** Runs submitted by this call (new, or claimed earlier and not yet submitted). */
  readonly submitted: readonly string[];
  /** Runs still running when checked. */
  readonly running: readonly string[];
  /** Runs whose outcome this call wrote to their requests. */
  readonly finished: readonly string[];
}

export interface ErasureStepParts {
  readonly ledger: ErasureLedger;
  /** The moves, order and outcome handling (not started: no timer, no waiting). */
  readonly worker: ErasureWorker;
  readonly runner: SteppedErasureRunner;
  readonly logger: Logger;
}

/** One step for every open request; never waits for a job to end. */
export async function advanceErasures(parts: ErasureStepParts): Promise<ErasureStepSummary> {
  const { ledger, worker, runner, logger } = parts;
  const submitted: string[] = [];
  const running: string[] = [];
  const finished: string[] = [];

  // Suppressions follow the keyring this invocation loaded (worker.ts): a full pass after a rotation or a destroy.
  await worker.coverSuppressions([]);
  const runs = new Map<string, ErasureRequest[]>();
  for (const request of await ledger.list('running')) {
    // A request running without a runId is the server worker's from before runIds were kept: it resumes it.
    if (request.runId === undefined) continue;
    runs.set(request.runId, [...(runs.get(request.runId) ?? []), request]);
  }
  for (const [runId, requests] of runs) {
    try {
      const stepId = requests.find((r) => r.stepId !== undefined)?.stepId;
      if (stepId === undefined) {
        if (await submit(parts, runId, requests)) submitted.push(runId);
        continue;
      }
      const checked = await runner.check(runId, stepId);
      if (checked.kind === 'running') {
        if (checked.progress) await worker.progress(runId, requests, checked.progress, new Map(requests.map((r) => [r.id, r.tables])));
        running.push(runId);
        continue;
      }
      await worker.finish(runId, requests, checked.outcome, checked.seconds ?? 0);
      finished.push(runId);
    } catch (error) {
      // One run's trouble (EMR or S3 unreachable) leaves it for the next call; the other runs still advance.
      logger.error({ runId, error: errorMessage(error) }, 'erasure step failed; the next one tries again');
    }
  }

  const batch = await worker.readyBatch();
  if (batch.length > 0) {
    const runId = `run-${randomUUID()}`;
    const claimed = await worker.claim(runId, batch);
    if (claimed.length > 0 && (await submit(parts, runId, claimed))) submitted.push(runId);
  }
  return { submitted, running, finished };
}

/**
 * Writes the run's order and submits it, then keeps the step id on each request (conditional on the request
 * still running in this run). False when every request was moved by another call meanwhile.
 */
async function submit(parts: ErasureStepParts, runId: string, requests: readonly ErasureRequest[]): Promise<boolean> {
  const { worker, runner, logger } = parts;
  const order = worker.orderFor(runId, requests);
  const stepId = await runner.submit(order);
  let kept = false;
  for (const request of requests) {
    const moved = await worker.moveUnlessMoved(request, { status: 'running', stepId, expected: { status: 'running', runId } }, { action: 'erasure.submitted', outcome: 'running' });
    kept ||= moved !== undefined;
  }
  logger.info({ runId, stepId, requestIds: requests.map((r) => r.id), subjects: order.subjects.length, tables: order.tables.map((t) => t.name), runner: runner.description }, 'erasure run submitted');
  return kept;
}
