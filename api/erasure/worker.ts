/**
 * Executes filed erasure requests: every `pollSeconds`, requests left `running` by a previous process are
 * resumed first (same runId: the runner re-attaches to that run or repeats it, the job being idempotent),
 * then the `received` ones go together into one run. A run's certificate moves its requests to `verified`,
 * or back to `received` for another attempt, or to `failed` after `maxAttempts`; each move is one ledger
 * transaction with its audit entry, so a request is verified exactly once however often the service stops.
 *
 * Just before a run, each subject's pseudonyms are recomputed under the key versions readable now (a version
 * created since filing has its own pseudonyms), from one stored pseudonym resolved in memory.
 */
import { randomUUID } from 'node:crypto';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { PolicySet } from '../policy/policy.ts';
import type { AuditInput, ErasureLedger, ErasureRequest, TableProgress } from './ledger.ts';
import type { TableRegistry } from './registry.ts';
import type { ErasureOrder, ErasureRunner, RunOutcome } from './runner.ts';
import type { ErasureSuppression } from './suppression.ts';

export interface WorkerOptions {
  readonly maxAttempts: number;
  readonly pollSeconds: number;
  readonly orphanGraceSeconds: number;
  /** A request sent back for another attempt waits this long, doubled at each attempt. */
  readonly retrySeconds: number;
}

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
  ) {}

  start(): void {
    const tick = (): void => {
      if (this.current) return;
      this.current = this.runOnce()
        .catch((error: unknown) => this.logger.error({ error: errorMessage(error) }, 'erasure worker tick failed'))
        .finally(() => (this.current = undefined));
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
    const interrupted = new Map<string, ErasureRequest[]>();
    for (const request of await this.ledger.list('running')) {
      const runId = request.runId ?? `run-${randomUUID()}`;
      interrupted.set(runId, [...(interrupted.get(runId) ?? []), request]);
    }
    for (const [runId, requests] of interrupted) {
      for (const request of requests) await this.move(request, { status: 'running', runId }, { action: 'erasure.resumed', outcome: 'running' });
      await this.execute(runId, requests);
    }
    const batch: ErasureRequest[] = [];
    let subjects = 0;
    const now = Date.now();
    for (const request of await this.ledger.list('received')) {
      // A failed attempt waits before the next (a young orphan holding a subject clears after the grace window).
      if (request.attempts > 0 && now - Date.parse(request.updatedAt) < this.options.retrySeconds * 1000 * 2 ** (request.attempts - 1)) continue;
      if (batch.length > 0 && subjects + request.subjects.length > MAX_SUBJECTS_PER_RUN) break;
      batch.push(request);
      subjects += request.subjects.length;
    }
    if (batch.length === 0) return;
    const runId = `run-${randomUUID()}`;
    const started: ErasureRequest[] = [];
    for (const request of batch) {
      started.push(await this.move(request, { status: 'running', runId, attempts: request.attempts + 1, tables: request.tables.map((t) => ({ ...t, status: 'running' as const })) }, { action: 'erasure.started', outcome: 'running' }));
    }
    await this.execute(runId, started);
  }

  private async execute(runId: string, requests: ErasureRequest[]): Promise<void> {
    let outcome: RunOutcome;
    // Progress writes go one after another, and all land before the run's outcome is written over them.
    let progressWrites = Promise.resolve();
    try {
      outcome = await this.runner.run(this.order(runId, requests), (tables) => {
        progressWrites = progressWrites.then(() => this.progress(requests, tables));
      });
    } catch (error) {
      outcome = { kind: 'crashed', reason: errorMessage(error) };
    }
    await progressWrites;
    for (const request of requests) {
      if (outcome.kind === 'completed' && outcome.certificate.result === 'verified') {
        const tables = request.tables.map((t): TableProgress => ({ table: t.table, status: 'verified' }));
        await this.move(request, { status: 'verified', tables, certificate: outcome.certificate, error: undefined }, { action: 'erasure.verified', outcome: 'verified' });
        continue;
      }
      const reason = outcome.kind === 'crashed' ? outcome.reason : `verification failed for ${outcome.certificate.tables.filter((t) => t.verification.result !== 'passed').map((t) => t.table).join(', ')}`;
      const tables = request.tables.map((t): TableProgress => {
        const report = outcome.kind === 'completed' ? outcome.certificate.tables.find((r) => r.table === t.table) : undefined;
        return { table: t.table, status: report?.verification.result === 'passed' ? 'verified' : 'failed' };
      });
      const certificate = outcome.kind === 'completed' ? outcome.certificate : undefined;
      if (request.attempts < this.options.maxAttempts) {
        await this.move(request, { status: 'received', tables, error: reason, certificate }, { action: 'erasure.retry', outcome: 'received' });
      } else {
        await this.move(request, { status: 'failed', tables, error: reason, certificate }, { action: 'erasure.failed', outcome: 'failed' });
      }
      this.logger.warn({ requestId: request.id, runId, attempts: request.attempts, reason }, 'erasure run did not verify');
    }
  }

  /** Shows the job's per-table progress on each request of the run (its own tables only). */
  private async progress(requests: readonly ErasureRequest[], tables: readonly TableProgress[]): Promise<void> {
    const byTable = new Map(tables.map((t) => [t.table, t]));
    for (const request of requests) {
      try {
        await this.ledger.updateTables(request.id, request.tables.map((t) => byTable.get(t.table) ?? t));
      } catch (error) {
        // Progress is a view of the run, not its state: a write that fails is logged and the run goes on.
        this.logger.warn({ requestId: request.id, error: errorMessage(error) }, 'erasure progress not recorded');
      }
    }
  }

  private move(request: ErasureRequest, change: Parameters<ErasureLedger['transition']>[1], audit: Omit<AuditInput, 'actor' | 'requestId'>): Promise<ErasureRequest> {
    return this.ledger.transition(request.id, change, { actor: SERVICE, requestId: request.id, ...audit });
  }

  /** The job's order: each subject's pseudonyms as filed plus those under key versions added since. */
  private order(runId: string, requests: readonly ErasureRequest[]): ErasureOrder {
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
