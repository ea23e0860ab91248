/**
 * Table maintenance on a schedule: every PSEUDO_MAINTENANCE_INTERVAL_HOURS (0: off), the process that runs the
 * erasure worker runs the Spark maintenance job (spark-udfs/src/spark_udfs/maintenance/job.py) once per registered
 * table, one table at a time, where the erasure job runs: locally with the erasure runner's Python, master and
 * jars, or as an EMR step on the erasure runner's cluster (the entry script `maintain.py` beside `erasure.py`).
 *
 * Serialised with erasure: a table is skipped in a round while an erasure request that names it is received or
 * running in the ledger (it is maintained in the next round). A request filed while maintenance runs is safe too:
 * both jobs commit through Iceberg's optimistic concurrency, and each retries a conflicting commit from the table's
 * new state, so compaction never rewrites rows a committed DELETE removed, and a DELETE never misses a file
 * compaction wrote.
 *
 * Observable: one log line per table (outcome, seconds, files before/after) and per skip; metrics
 * `pseudo_maintenance_table_runs_total{outcome}` and `pseudo_maintenance_table_run_duration_seconds` (labels are
 * outcomes only; table names go to the log line).
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { AddJobFlowStepsCommand, DescribeStepCommand, EMRClient, type StepState } from '@aws-sdk/client-emr';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Counter, Histogram, type Registry } from 'prom-client';
import { z } from 'zod';
import { sparkSubmitArgs } from '../../infra/artifacts/sparkSubmit.ts';
import type { ErasureRunnerConfig } from '../config/config.ts';
import type { ErasureLedger } from '../erasure/ledger.ts';
import { ConfigError, errorMessage } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import { backoffDelayMs, sleep } from '../retry/backoff.ts';

/** What the job reports per table (spark_udfs.maintenance.job): the fields the service logs. */
const tableReportSchema = z.object({
  table: z.string(),
  result: z.enum(['ok', 'failed']),
  error: z.string().optional(),
  before: z.object({ dataFiles: z.number(), manifests: z.number(), snapshots: z.number() }).optional(),
  after: z.object({ dataFiles: z.number(), manifests: z.number(), snapshots: z.number() }).optional(),
});
const reportSchema = z.object({ result: z.enum(['ok', 'failed']), tables: z.array(tableReportSchema) });
export type MaintenanceReport = z.infer<typeof reportSchema>;

export type MaintenanceOutcome = { readonly kind: 'completed'; readonly report: MaintenanceReport } | { readonly kind: 'crashed'; readonly reason: string };

export type MaintenanceRunOutcome = 'ok' | 'failed' | 'crashed' | 'skipped_erasure';

export interface MaintenanceRunner {
  readonly description: string;
  /** Runs the job for one registered table; resolves when it ends. */
  run(runId: string, table: string): Promise<MaintenanceOutcome>;
}

/** The outcome from the report's text (written whole at the end), or crashed with the reason (never a value). */
export function outcomeOfReport(text: string | undefined, exitReason: string): MaintenanceOutcome {
  if (text === undefined) return { kind: 'crashed', reason: exitReason };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { kind: 'crashed', reason: "the job's report is not JSON" };
  }
  const checked = reportSchema.safeParse(parsed);
  return checked.success ? { kind: 'completed', report: checked.data } : { kind: 'crashed', reason: `the job's report lacks ${checked.error.issues[0]?.path.join('.') ?? 'a field'}` };
}

/** `python -m spark_udfs.maintenance.job` on this machine (local Spark), as the local erasure runner runs its job. */
export class LocalMaintenanceRunner implements MaintenanceRunner {
  readonly description: string;

  constructor(
    private readonly options: { readonly python: string; readonly sparkMaster: string; readonly jars: string; readonly workDir: string },
    private readonly registryFile: string,
  ) {
    this.description = `local spark-submit (${options.sparkMaster})`;
  }

  async run(runId: string, table: string): Promise<MaintenanceOutcome> {
    const folder = join(this.options.workDir, runId);
    mkdirSync(folder, { recursive: true, mode: 0o700 });
    const reportFile = join(folder, 'report.json');
    const log = openSync(join(folder, 'job.log'), 'a', 0o600);
    const child = spawn(this.options.python, ['-m', 'spark_udfs.maintenance.job', '--registry', this.registryFile, '--report', reportFile, '--table', table, '--master', this.options.sparkMaster], {
      stdio: ['ignore', log, log],
      env: { ...process.env, PYSPARK_PYTHON: this.options.python, SPARK_UDFS_JARS: this.options.jars },
    });
    closeSync(log);
    const code = await new Promise<number | null>((resolve) => {
      child.on('exit', (exitCode) => {
        resolve(exitCode);
      });
      child.on('error', () => {
        resolve(null);
      });
    });
    const reason = code === null ? `the job could not be started (${this.options.python})` : `the job exited with code ${code} without a report (see ${join(folder, 'job.log')})`;
    return outcomeOfReport(readIfPresent(reportFile), reason);
  }
}

const ENDED: ReadonlySet<StepState> = new Set(['COMPLETED', 'FAILED', 'CANCELLED', 'INTERRUPTED']);

/** An EMR step on the erasure runner's cluster: the registry and the report in S3 under `<work>/maintenance/<runId>/`. */
export class EmrMaintenanceRunner implements MaintenanceRunner {
  readonly description: string;
  private readonly emr: EMRClient;
  private readonly s3: S3Client;

  constructor(
    private readonly config: Extract<ErasureRunnerConfig, { kind: 'emr' }>,
    private readonly registryFile: string,
    private readonly poll = { firstDelayMs: 5000, maxDelayMs: 60_000 },
  ) {
    this.description = `EMR cluster ${config.clusterId}`;
    const clientConfig = { region: config.region, ...(config.endpoint ? { endpoint: config.endpoint } : {}), maxAttempts: 5 };
    this.emr = new EMRClient(clientConfig);
    this.s3 = new S3Client({ ...clientConfig, forcePathStyle: config.endpoint !== undefined });
  }

  async run(runId: string, table: string): Promise<MaintenanceOutcome> {
    const folder = `${this.config.workUri}/maintenance/${runId}`;
    const registry = `${folder}/registry.json`;
    const report = `${folder}/report.json`;
    await this.s3.send(new PutObjectCommand({ ...location(registry), Body: readFileSync(this.registryFile, 'utf8'), ContentType: 'application/json', ServerSideEncryption: 'aws:kms' }));
    // The maintenance entry script is deployed beside the erasure one (spark-udfs/entry/maintain.py).
    const entryScript = `${dirname(this.config.jobUri)}/maintain.py`;
    const added = await this.emr.send(
      new AddJobFlowStepsCommand({
        JobFlowId: this.config.clusterId,
        Steps: [{ Name: `maintenance-${runId}`, ActionOnFailure: 'CONTINUE', HadoopJarStep: { Jar: 'command-runner.jar', Args: sparkSubmitArgs({ entryScript, pyFiles: this.config.pyFiles, jobArgs: ['--registry', registry, '--report', report, '--table', table] }) } }],
      }),
    );
    const stepId = added.StepIds?.[0];
    if (!stepId) return { kind: 'crashed', reason: 'AddJobFlowSteps returned no step id' };
    for (let polls = 1; ; polls++) {
      const step = (await this.emr.send(new DescribeStepCommand({ ClusterId: this.config.clusterId, StepId: stepId }))).Step;
      const state = step?.Status?.State;
      if (state && ENDED.has(state)) {
        const failure = step.Status?.FailureDetails;
        const reason = state === 'COMPLETED' ? `EMR step ${stepId} completed without a report at ${report}` : `EMR step ${stepId} ${state}${failure?.Reason ? `: ${failure.Reason}` : ''}`;
        return outcomeOfReport(await this.text(report), reason);
      }
      await sleep(backoffDelayMs(polls, { baseDelayMs: this.poll.firstDelayMs, maxDelayMs: this.poll.maxDelayMs, jitter: 'none' }));
    }
  }

  private async text(uri: string): Promise<string | undefined> {
    try {
      return (await (await this.s3.send(new GetObjectCommand(location(uri)))).Body?.transformToString()) ?? undefined;
    } catch (error) {
      if (error instanceof Error && (error.name === 'NoSuchKey' || error.name === 'NotFound')) return undefined;
      throw error;
    }
  }
}

/** The maintenance runner beside the configured erasure runner: same machine or cluster, its own work folder. */
export function maintenanceRunnerFor(config: ErasureRunnerConfig, registryFile: string): MaintenanceRunner {
  return config.kind === 'local' ? new LocalMaintenanceRunner({ ...config, workDir: join(dirname(config.workDir), 'maintenance-runs') }, registryFile) : new EmrMaintenanceRunner(config, registryFile);
}

export class MaintenanceMetrics {
  private readonly runs: Counter<'outcome'>;
  private readonly duration: Histogram;

  constructor(registers: Registry[]) {
    this.runs = new Counter({
      name: 'pseudo_maintenance_table_runs_total',
      help: 'Table maintenance runs by outcome: ok, failed (the job reported the table failed), crashed (no report), skipped_erasure (an erasure of the table was pending or running)',
      labelNames: ['outcome'],
      registers,
    });
    this.duration = new Histogram({
      name: 'pseudo_maintenance_table_run_duration_seconds',
      help: 'Time of one table maintenance run, Spark start included',
      buckets: [10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14_400],
      registers,
    });
  }

  record(outcome: MaintenanceRunOutcome, seconds: number | undefined): void {
    this.runs.inc({ outcome });
    if (seconds !== undefined) this.duration.observe(seconds);
  }
}

export class MaintenanceSchedule {
  private timer: NodeJS.Timeout | undefined;
  private current: Promise<void> | undefined;

  constructor(
    private readonly tables: readonly string[],
    private readonly ledger: Pick<ErasureLedger, 'list'>,
    private readonly runner: MaintenanceRunner,
    private readonly intervalHours: number,
    private readonly logger: Logger,
    private readonly metrics?: MaintenanceMetrics,
  ) {
    if (intervalHours <= 0) throw new ConfigError('PSEUDO_MAINTENANCE_INTERVAL_HOURS: the schedule needs an interval above 0');
  }

  /** A round every interval (the first one interval after start); a round still running makes the next one wait. */
  start(): void {
    const tick = (): void => {
      if (this.current) return;
      this.current = this.runOnce()
        .then(() => undefined)
        .catch((error: unknown) => {
          this.logger.error({ error: errorMessage(error) }, 'table maintenance round failed');
        })
        .finally(() => {
          this.current = undefined;
        });
    };
    this.timer = setInterval(tick, this.intervalHours * 3_600_000);
    this.timer.unref();
    this.logger.info({ tables: this.tables.length, intervalHours: this.intervalHours, runner: this.runner.description }, 'table maintenance scheduled');
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** One round: every registered table in turn, each unless an erasure of it is pending or running. */
  async runOnce(): Promise<MaintenanceRunOutcome[]> {
    const outcomes: MaintenanceRunOutcome[] = [];
    for (const table of this.tables) {
      if (await this.erasureOpen(table)) {
        this.logger.info({ table }, 'table maintenance skipped: an erasure of the table is pending or running');
        this.metrics?.record('skipped_erasure', undefined);
        outcomes.push('skipped_erasure');
        continue;
      }
      outcomes.push(await this.maintain(table));
    }
    return outcomes;
  }

  /** Whether a received or running erasure request names the table (the erasure job runs it first). */
  async erasureOpen(table: string): Promise<boolean> {
    for (const status of ['received', 'running'] as const) {
      if ((await this.ledger.list(status)).some((request) => request.tables.some((t) => t.table === table))) return true;
    }
    return false;
  }

  private async maintain(table: string): Promise<MaintenanceRunOutcome> {
    const runId = `maintenance-${randomUUID()}`;
    const started = Date.now();
    this.logger.info({ runId, table, runner: this.runner.description }, 'table maintenance started');
    let outcome: MaintenanceOutcome;
    try {
      outcome = await this.runner.run(runId, table);
    } catch (error) {
      outcome = { kind: 'crashed', reason: errorMessage(error) };
    }
    const seconds = (Date.now() - started) / 1000;
    if (outcome.kind === 'crashed') {
      this.logger.error({ runId, table, seconds, reason: outcome.reason }, 'table maintenance ended without a report');
      this.metrics?.record('crashed', seconds);
      return 'crashed';
    }
    const report = outcome.report.tables.find((t) => t.table === table);
    const ok = report?.result === 'ok';
    this.logger[ok ? 'info' : 'warn'](
      { runId, table, seconds, result: report?.result ?? 'missing', error: report?.error, dataFilesBefore: report?.before?.dataFiles, dataFilesAfter: report?.after?.dataFiles, manifestsBefore: report?.before?.manifests, manifestsAfter: report?.after?.manifests, snapshotsAfter: report?.after?.snapshots },
      ok ? 'table maintenance done' : 'table maintenance failed',
    );
    this.metrics?.record(ok ? 'ok' : 'failed', seconds);
    return ok ? 'ok' : 'failed';
  }
}

function readIfPresent(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function location(uri: string): { Bucket: string; Key: string } {
  const match = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri);
  if (!match) throw new ConfigError('PSEUDO_ERASURE_EMR_WORK_URI: must be s3://bucket[/prefix]');
  return { Bucket: match[1]!, Key: match[2]! };
}
