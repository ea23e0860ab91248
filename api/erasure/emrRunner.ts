/**
 * Runs the erasure job as a step of a running EMR cluster: the order goes to S3, AddJobFlowSteps submits
 * `spark-submit --deploy-mode cluster [--py-files s3://…/spark_udfs-….zip] <job.py> --order s3://… --certificate s3://…`
 * through command-runner.jar,
 * and DescribeStep is polled with exponential backoff until the step ends. A failed, cancelled or interrupted
 * step is reported with EMR's own reason, message and log location.
 *
 * Re-attaching after a restart: a certificate already in S3 is the outcome; a step named `erasure-<runId>`
 * already on the cluster (ListSteps) is polled; otherwise the order is submitted again.
 *
 * `run` waits (the server's worker); `submit` and `check` return at once, for the scheduled steps
 * (erasure/steps.ts, lambda/erasureStep.ts) that keep the step id in the ledger between invocations.
 */
import { AddJobFlowStepsCommand, DescribeStepCommand, EMRClient, ListStepsCommand, type StepState } from '@aws-sdk/client-emr';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { ConfigError, PlatformError } from '../errors.ts';
import { backoffDelayMs, sleep } from '../retry/backoff.ts';
import { sparkSubmitArgs } from '../../infra/artifacts/sparkSubmit.ts';
import { parseContract } from '../contracts/contracts.ts';
import { outcomeOfCertificate, parseProgress, type ErasureOrder, type ProgressListener, type RunCheck, type RunOutcome, type SteppedErasureRunner } from './runner.ts';

export interface EmrRunnerConfig {
  readonly clusterId: string;
  /** s3://bucket/…/erasure.py: the erasure entry script deploy uploads (spark-udfs/entry/erasure.py). */
  readonly jobUri: string;
  /**
   * The step's --py-files: the spark-udfs zip deploy uploads (PSEUDO_ERASURE_EMR_PY_FILES), which Spark puts on
   * the driver's and executors' path, so the cluster needs only the package's dependencies (a bootstrap action:
   * infra/emr/bootstrap/python-dependencies.sh). None when spark-udfs is installed on the cluster itself.
   */
  readonly pyFiles?: readonly string[];
  /** s3://bucket[/prefix]: one folder per run with order.json and certificate.json. */
  readonly workUri: string;
  readonly region: string;
  readonly endpoint: string | undefined;
}

export interface PollOptions {
  readonly firstDelayMs: number;
  readonly maxDelayMs: number;
}

const ENDED: ReadonlySet<StepState> = new Set(['COMPLETED', 'FAILED', 'CANCELLED', 'INTERRUPTED']);

export class EmrErasureRunner implements SteppedErasureRunner {
  readonly description: string;
  private readonly emr: EMRClient;
  private readonly s3: S3Client;

  constructor(
    private readonly config: EmrRunnerConfig,
    private readonly poll: PollOptions = { firstDelayMs: 5000, maxDelayMs: 60_000 },
  ) {
    this.description = `EMR cluster ${config.clusterId}`;
    const clientConfig = { region: config.region, ...(config.endpoint ? { endpoint: config.endpoint } : {}), maxAttempts: 5 };
    this.emr = new EMRClient(clientConfig);
    this.s3 = new S3Client({ ...clientConfig, forcePathStyle: config.endpoint !== undefined });
  }

  async run(order: ErasureOrder, onProgress?: ProgressListener): Promise<RunOutcome> {
    const finished = await this.text(this.uris(order.runId).certificate);
    if (finished !== undefined) return outcomeOfCertificate(finished, order);
    const stepId = await this.submit(order);
    const schedule = { baseDelayMs: this.poll.firstDelayMs, maxDelayMs: this.poll.maxDelayMs, jitter: 'none' } as const;
    let polls = 0;
    let reported = '';
    for (;;) {
      const checked = await this.check(order.runId, stepId);
      if (checked.kind === 'ended') return checked.outcome;
      const shown = JSON.stringify(checked.progress ?? null);
      if (onProgress && checked.progress && shown !== reported) {
        reported = shown;
        onProgress(checked.progress);
      }
      await sleep(backoffDelayMs(++polls, schedule));
    }
  }

  /**
   * Puts the order in S3 and adds the step; returns the step id at once. A step of this run already on the
   * cluster (named `erasure-<runId>`) is returned instead of adding another.
   */
  async submit(order: ErasureOrder): Promise<string> {
    const stepName = `erasure-${order.runId}`;
    const existing = await this.findStep(stepName);
    if (existing) return existing;
    const uris = this.uris(order.runId);
    await this.s3.send(new PutObjectCommand({ ...location(uris.order), Body: JSON.stringify(parseContract('erasure-order', order)), ContentType: 'application/json', ServerSideEncryption: 'aws:kms' }));
    const added = await this.emr.send(
      new AddJobFlowStepsCommand({
        JobFlowId: this.config.clusterId,
        Steps: [
          {
            Name: stepName,
            ActionOnFailure: 'CONTINUE',
            // The argument builder `npm run infra -- submit` and the artifacts manifest use too.
            HadoopJarStep: { Jar: 'command-runner.jar', Args: sparkSubmitArgs({ entryScript: this.config.jobUri, pyFiles: this.config.pyFiles ?? [], jobArgs: ['--order', uris.order, '--certificate', uris.certificate, '--progress', uris.progress] }) },
          },
        ],
      }),
    );
    const stepId = added.StepIds?.[0];
    if (!stepId) throw new PlatformError('internal', 'AddJobFlowSteps returned no step id');
    return stepId;
  }

  /**
   * One look at a submitted run: DescribeStep, then the certificate when the step completed, or the job's
   * per-table progress while it runs. Never waits.
   */
  async check(runId: string, stepId: string): Promise<RunCheck> {
    const uris = this.uris(runId);
    const step = (await this.emr.send(new DescribeStepCommand({ ClusterId: this.config.clusterId, StepId: stepId }))).Step;
    const state = step?.Status?.State;
    const timeline = step?.Status?.Timeline;
    const seconds = timeline?.StartDateTime && timeline.EndDateTime ? (timeline.EndDateTime.getTime() - timeline.StartDateTime.getTime()) / 1000 : undefined;
    if (!state || !ENDED.has(state)) return { kind: 'running', progress: parseProgress(await this.text(uris.progress)) };
    if (state === 'COMPLETED') {
      const certificate = await this.text(uris.certificate);
      const outcome: RunOutcome = certificate !== undefined ? outcomeOfCertificate(certificate, { runId }) : { kind: 'crashed', reason: `EMR step ${stepId} completed without a certificate at ${uris.certificate}` };
      return { kind: 'ended', outcome, seconds };
    }
    const failure = step.Status?.FailureDetails;
    const details = [failure?.Reason, failure?.Message, failure?.LogFile ? `log: ${failure.LogFile}` : undefined].filter(Boolean).join('; ');
    return { kind: 'ended', outcome: { kind: 'crashed', reason: `EMR step ${stepId} ${state}${details ? `: ${details}` : ''}` }, seconds };
  }

  private uris(runId: string): { order: string; certificate: string; progress: string } {
    const folder = `${this.config.workUri}/${runId}`;
    return { order: `${folder}/order.json`, certificate: `${folder}/certificate.json`, progress: `${folder}/progress.json` };
  }

  private async findStep(name: string): Promise<string | undefined> {
    let marker: string | undefined;
    do {
      const page = await this.emr.send(new ListStepsCommand({ ClusterId: this.config.clusterId, Marker: marker }));
      const found = page.Steps?.find((step) => step.Name === name);
      if (found?.Id) return found.Id;
      marker = page.Marker;
    } while (marker);
    return undefined;
  }

  /** An S3 object's text, or undefined when there is none yet. */
  private async text(uri: string): Promise<string | undefined> {
    try {
      const object = await this.s3.send(new GetObjectCommand(location(uri)));
      return (await object.Body?.transformToString()) ?? undefined;
    } catch (error) {
      if (error instanceof Error && (error.name === 'NoSuchKey' || error.name === 'NotFound')) return undefined;
      throw error;
    }
  }
}

function location(uri: string): { Bucket: string; Key: string } {
  const match = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri);
  if (!match) throw new ConfigError('PSEUDO_ERASURE_EMR_WORK_URI: must be s3://bucket[/prefix]');
  return { Bucket: match[1]!, Key: match[2]! };
}
