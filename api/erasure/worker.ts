/**
 * Executes filed erasure requests: every `pollSeconds`, requests left `running` by a previous process are
 * resumed first (same runId: the runner re-attaches to that run or repeats it, the job being idempotent),
 * then the `received` ones go together into one run. A run's certificate moves its requests to `verified`,
 * or back to `received` for another attempt, or to `failed` after `maxAttempts`; each move is one ledger
 * transaction with its audit entry, so a request is verified exactly once however often the service stops.
 *
 * Just before a run, each subject's pseudonyms are recomputed under the key versions readable now (a version
 * created since filing has its own pseudonyms), from one stored pseudonym resolved in memory.
 *
 * Suppressions follow rotation (coverage.ts): at the start of each round, and for the requests a round claims, each
 * suppressed subject gets its pseudonyms under the active key version, so that it stays suppressed once the versions
 * it was filed under are destroyed. This is the place certain to run wherever erasure advances: the server's loop
 * (`runOnce`) and the Lambda erasure step (steps.ts `advanceErasures`) both go through it, right after loading the
 * keyring (a full pass whenever the keyring changed since the last one).
 *
 * Observable: each run logs its start, every table's outcome, the verification and the certificate's id (the
 * run id), and feeds the erasure metrics; log lines and labels carry run and request ids and registered table
 * names, never subjects, values or pseudonyms. A table's progress within a run only moves forward
 * (pending → running → verified | failed): the job reports the tables it has not reached as pending, and a job
 * re-run after a restart starts its report from scratch; neither may undo what the request already shows.
 */
import { randomUUID } from 'node:crypto';
import { errorMessage, LedgerError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { ErasureMetrics, ErasureRunOutcome } from '../observability/metrics.ts';
import { backoffDelayMs } from '../retry/backoff.ts';
import type { PolicySet } from '../policy/policy.ts';
import { mergeProgress, type AuditInput, type ErasureLedger, type ErasureRequest, type TableProgress } from './ledger.ts';
import type { TableRegistry } from './registry.ts';
import type { ErasureOrder, ErasureRunner, RunOutcome } from './runner.ts';
import type { ErasureSuppression } from './suppression.ts';
import type { SuppressionCoverage } from './coverage.ts';

export interface WorkerOptions {
  readonly maxAttempts: number;
  readonly pollSeconds: number;
  readonly orphanGraceSeconds: number;
  /** A request sent back for another attempt waits this long, doubled at each attempt (at most a day). */
  readonly retrySeconds: number;
}

/** Waits between attempts stop doubling at a day: GDPR's month has to hold over every attempt. */
const MAX_RETRY_WAIT_MS = 86_400_000;

const SERVICE = 'service';
/** Subjects per run at most; more wait for the next run. */
const MAX_SUBJECTS_PER_RUN = 1000;

export class ErasureWorker {
  private timer: NodeJS.Timeout | undefined;
  private current: Promise<void> | undefined;

  constructor(
    private readonly ledger: ErasureLedger,
    private readonly registry: TableRegistry,
    private readonly suppression: ErasureSuppression,
    private readonly policies: PolicySet,
    private readonly runner: ErasureRunner,
    private readonly options: WorkerOptions,
    private readonly logger: Logger,
    private readonly metrics?: ErasureMetrics,
    /** Keeps suppressions matching across rotation (service.ts builds it; tests of other things may leave it out). */
    private readonly coverage?: SuppressionCoverage,
  ) {}

  start(): void {
    const tick = (): void => {
      if (this.current) return;
      this.current = this.runOnce()
        .catch((error: unknown) => {
          this.logger.error({ error: errorMessage(error) }, 'erasure worker tick failed');
        })
        .finally(() => {
          this.current = undefined;
        });
    };
    tick();
    this.timer = setInterval(tick, this.options.pollSeconds * 1000);
    this.timer.unref();
  }

  /** Stops polling. A run in progress keeps going in its own process; the next start re-attaches to it. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** One round: resume interrupted runs, then start one for the received requests. Exposed for tests. */
  async runOnce(): Promise<void> {
    await this.coverSuppressions([]);
    const interrupted = new Map<string, ErasureRequest[]>();
    for (const request of await this.ledger.list('running')) {
      const runId = request.runId ?? `run-${randomUUID()}`;
      interrupted.set(runId, [...(interrupted.get(runId) ?? []), request]);
    }
    for (const [runId, requests] of interrupted) {
      for (const request of requests) await this.move(request, { status: 'running', runId }, { action: 'erasure.resumed', outcome: 'running' });
      await this.execute(runId, requests, true);
    }
    const batch = await this.readyBatch();
    if (batch.length === 0) return;
    const runId = `run-${randomUUID()}`;
    const started = await this.claim(runId, batch);
    if (started.length > 0) await this.execute(runId, started, false);
  }

  /** The received requests that may start a run now (a failed attempt waits its backoff), up to a run's size. */
  async readyBatch(): Promise<ErasureRequest[]> {
    const batch: ErasureRequest[] = [];
    let subjects = 0;
    const now = Date.now();
    for (const request of await this.ledger.list('received')) {
      // A failed attempt waits before the next (a young orphan holding a subject clears after the grace window).
      const wait = backoffDelayMs(request.attempts, { baseDelayMs: this.options.retrySeconds * 1000, maxDelayMs: MAX_RETRY_WAIT_MS, jitter: 'none' });
      if (request.attempts > 0 && now - Date.parse(request.updatedAt) < wait) continue;
      if (batch.length > 0 && subjects + request.subjects.length > MAX_SUBJECTS_PER_RUN) break;
      batch.push(request);
      subjects += request.subjects.length;
    }
    return batch;
  }

  /**
   * Moves the batch into a new run, each request on condition that it is still received: one another process
   * took first (overlapping scheduled steps) is left out, so a request is never in two runs.
   */
  async claim(runId: string, batch: readonly ErasureRequest[]): Promise<ErasureRequest[]> {
    await this.coverSuppressions(batch);
    const started: ErasureRequest[] = [];
    for (const request of batch) {
      // Every table waits for the job to reach it (the job reports each one as it goes).
      const tables = request.tables.map((t): TableProgress => ({ table: t.table, status: 'pending' }));
      const moved = await this.moveUnlessMoved(request, { status: 'running', runId, attempts: request.attempts + 1, tables, expected: { status: 'received' } }, { action: 'erasure.started', outcome: 'running' });
      if (moved) started.push(moved);
    }
    return started;
  }

  /**
   * Suppressed subjects get their pseudonyms under the active key version: every request when the keyring changed
   * since the last pass, else those of `requests`. A failure is logged and the round goes on (the next one tries
   * again); logged with counts, contexts and versions only.
   */
  async coverSuppressions(requests: readonly ErasureRequest[]): Promise<void> {
    if (!this.coverage) return;
    try {
      const covered = await this.coverage.coverIfNeeded(SERVICE, requests);
      if (!covered) return;
      const { report, full } = covered;
      if (report.pseudonyms > 0) {
        this.logger.info({ keyVersion: report.keyVersion, requests: report.requests, subjects: report.subjects, pseudonyms: report.pseudonyms }, 'suppressions extended to the active key version');
      }
      const lacking = report.underived.filter((s) => !s.versions?.includes(report.keyVersion));
      if (full && lacking.length > 0) {
        // Keyed-hash tokens cannot be re-derived: these stay suppressed while a version they are under is readable.
        const contexts = [...new Set(lacking.map((s) => s.context))].sort();
        this.logger.warn({ keyVersion: report.keyVersion, suppressions: lacking.length, contexts }, 'suppressions without a pseudonym under the active key version (keys destroy refuses to destroy their last version)');
      }
    } catch (error) {
      this.logger.error({ error: errorMessage(error) }, 'suppressions not extended to the active key version; the next round tries again');
    }
  }

  private async execute(runId: string, requests: ErasureRequest[], resumed: boolean): Promise<void> {
    const startedAt = Date.now();
    let outcome: RunOutcome;
    // What each request shows now; progress reports only move it forward.
    const shown = new Map(requests.map((r) => [r.id, r.tables]));
    // Progress writes go one after another, and all land before the run's outcome is written over them.
    let progressWrites = Promise.resolve();
    try {
      const order = this.orderFor(runId, requests);
      this.logger.info(
        { runId, resumed, requestIds: requests.map((r) => r.id), subjects: order.subjects.length, tables: order.tables.map((t) => t.name), runner: this.runner.description },
        resumed ? 'erasure run resumed' : 'erasure run started',
      );
      outcome = await this.runner.run(order, (tables) => {
        progressWrites = progressWrites.then(() => this.progress(runId, requests, tables, shown));
      });
    } catch (error) {
      outcome = { kind: 'crashed', reason: errorMessage(error) };
    }
    await progressWrites;
    await this.finish(runId, requests, outcome, (Date.now() - startedAt) / 1000);
  }

  /**
   * Writes a run's outcome to its requests: verified with the certificate, or back to received for another
   * attempt, or failed after the last; logged and counted. Each move is conditional on the request still running
   * in this run, so a run finished by two overlapping processes is written once.
   */
  async finish(runId: string, requests: readonly ErasureRequest[], outcome: RunOutcome, seconds: number): Promise<void> {
    this.report(runId, outcome, seconds);
    const expected = { status: 'running', runId } as const;
    for (const request of requests) {
      if (outcome.kind === 'completed' && outcome.certificate.result === 'verified') {
        const tables = request.tables.map((t): TableProgress => ({ table: t.table, status: 'verified' }));
        if (!(await this.moveUnlessMoved(request, { status: 'verified', tables, certificate: outcome.certificate, error: undefined, expected }, { action: 'erasure.verified', outcome: 'verified' }))) continue;
        this.logger.info({ requestId: request.id, runId, certificateId: outcome.certificate.runId }, 'erasure request verified');
        continue;
      }
      const reason = outcome.kind === 'crashed' ? outcome.reason : `verification failed for ${outcome.certificate.tables.filter((t) => t.verification.result !== 'passed').map((t) => t.table).join(', ')}`;
      const tables = request.tables.map((t): TableProgress => {
        const report = outcome.kind === 'completed' ? outcome.certificate.tables.find((r) => r.table === t.table) : undefined;
        return { table: t.table, status: report?.verification.result === 'passed' ? 'verified' : 'failed' };
      });
      const certificate = outcome.kind === 'completed' ? outcome.certificate : undefined;
      const retry = request.attempts < this.options.maxAttempts;
      const moved = retry
        ? await this.moveUnlessMoved(request, { status: 'received', tables, error: reason, certificate, expected }, { action: 'erasure.retry', outcome: 'received' })
        : await this.moveUnlessMoved(request, { status: 'failed', tables, error: reason, certificate, expected }, { action: 'erasure.failed', outcome: 'failed' });
      if (!moved) continue;
      this.logger.warn({ requestId: request.id, runId, attempts: request.attempts, reason }, 'erasure run did not verify');
    }
  }

  /** Logs the run's outcome, table by table, and counts it in the metrics. */
  private report(runId: string, outcome: RunOutcome, seconds: number): void {
    const rowsDeleted = new Map<string, number>();
    if (outcome.kind === 'crashed') {
      this.logger.error({ runId, seconds, reason: outcome.reason }, 'erasure run ended without a certificate');
    } else {
      const { certificate } = outcome;
      for (const table of certificate.tables) {
        // Counts travel as decimal strings (64-bit); a row count fits a metric's double.
        rowsDeleted.set(table.table, Number(table.rowsDeleted));
        this.logger.info(
          { runId, table: table.table, verification: table.verification.result, rowsDeleted: table.rowsDeleted, dataFilesRewritten: table.dataFilesRewritten, filesScanned: table.verification.filesScanned, snapshotBefore: table.snapshotBefore, snapshotAfter: table.snapshotAfter },
          'erasure table done',
        );
      }
      const verified = certificate.result === 'verified';
      this.logger[verified ? 'info' : 'warn']({ runId, seconds, verification: certificate.result, certificateId: certificate.runId, tables: certificate.tables.length }, verified ? 'erasure run verified' : 'erasure run verification failed');
    }
    const kind: ErasureRunOutcome = outcome.kind === 'crashed' ? 'crashed' : outcome.certificate.result === 'verified' ? 'verified' : 'unverified';
    this.metrics?.recordRun(kind, seconds, rowsDeleted);
  }

  /**
   * Shows the job's per-table progress on each request of the run (its own tables only), never lowering a
   * table's status: a table the request shows as running or done stays so when a (re-run) job reports it pending.
   * The store merges the same way again inside its write, conditional on the request still running in `runId`,
   * against what other processes wrote meanwhile.
   */
  async progress(runId: string, requests: readonly ErasureRequest[], tables: readonly TableProgress[], shown: Map<string, readonly TableProgress[]>): Promise<void> {
    for (const request of requests) {
      const current = shown.get(request.id) ?? request.tables;
      const next = mergeProgress(current, tables);
      if (next.every((t, i) => t === current[i] || sameProgress(t, current[i]))) continue;
      try {
        await this.ledger.updateTables(request.id, runId, next);
        shown.set(request.id, next);
      } catch (error) {
        // Progress is a view of the run, not its state: a write that fails is logged and the run goes on.
        this.logger.warn({ requestId: request.id, error: errorMessage(error) }, 'erasure progress not recorded');
      }
    }
  }

  private move(request: ErasureRequest, change: Parameters<ErasureLedger['transition']>[1], audit: Omit<AuditInput, 'actor' | 'requestId'>): Promise<ErasureRequest> {
    return this.ledger.transition(request.id, change, { actor: SERVICE, requestId: request.id, ...audit });
  }

  /** The move, or undefined when another process moved the request first (ledger-conflict on `expected`). */
  async moveUnlessMoved(request: ErasureRequest, change: Parameters<ErasureLedger['transition']>[1], audit: Omit<AuditInput, 'actor' | 'requestId'>): Promise<ErasureRequest | undefined> {
    try {
      return await this.move(request, change, audit);
    } catch (error) {
      if (error instanceof LedgerError && error.code === 'ledger-conflict') {
        this.logger.info({ requestId: request.id, action: audit.action }, 'erasure request moved by another process first; left to it');
        return undefined;
      }
      throw error;
    }
  }

  /** The job's order: each subject's pseudonyms as filed plus those under key versions added since. */
  orderFor(runId: string, requests: readonly ErasureRequest[]): ErasureOrder {
    const subjects = requests.flatMap((request) => request.subjects.map((subject) => ({ context: subject.context, pseudonyms: this.withCurrentVersions(subject.context, subject.pseudonyms) })));
    const contexts = new Set(subjects.map((s) => s.context));
    const catalog = this.registry.catalog;
    return {
      runId,
      requestIds: requests.map((r) => r.id),
      subjects,
      tables: this.registry.tablesFor(contexts).map((t) => ({ name: t.name, columns: t.columns })),
      catalog: catalog.type === 'jdbc' ? { name: catalog.name, type: 'jdbc', uri: catalog.uri, warehouse: catalog.warehouse } : { name: catalog.name, type: 'glue', warehouse: catalog.warehouse },
      orphanGraceSeconds: this.options.orphanGraceSeconds,
      refs: 'drop',
    };
  }

  private withCurrentVersions(context: string, filed: readonly string[]): string[] {
    if (this.policies.resolve(context).transform !== 'deterministic') return [...filed]; // hash tokens and FPE cannot be re-derived here
    const answer = this.suppression.resolveForErasure(context, filed);
    const value = answer.values.find((v): v is string => typeof v === 'string');
    if (value === undefined) return [...filed]; // every version it was filed under is destroyed: its data is unreadable anyway
    return [...new Set([...filed, ...this.suppression.pseudonymsInEveryVersion(context, [value])[0]!])];
  }
}

function sameProgress(a: TableProgress, b: TableProgress | undefined): boolean {
  return a.table === b?.table && a.status === b.status && a.detail === b.detail;
}
