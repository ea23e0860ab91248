/**
 * Runs the erasure job as a step of a running EMR cluster: the order goes to S3, AddJobFlowSteps submits
 * `spark-submit --deploy-mode cluster <job.py> --order s3://… --certificate s3://…` through command-runner.jar,
 * and DescribeStep is polled with exponential backoff until the step ends. A failed, cancelled or interrupted
 * step is reported with EMR's own reason, message and log location.
 *
 * Re-attaching after a restart: a certificate already in S3 is the outcome; a step named `erasure-<runId>`
 * already on the cluster (ListSteps) is polled; otherwise the order is submitted again.
 */
import { AddJobFlowStepsCommand, DescribeStepCommand, EMRClient, ListStepsCommand, type StepState } from '@aws-sdk/client-emr';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { ConfigError } from '../errors.ts';
import { backoffDelayMs, sleep } from '../retry/backoff.ts';
import { parseContract } from '../contracts/contracts.ts';
import { outcomeOfCertificate, parseProgress, type ErasureOrder, type ErasureRunner, type ProgressListener, type RunOutcome } from './runner.ts';

export interface EmrRunnerConfig {
  readonly clusterId: string;
  /** s3://bucket/…/job.py: spark-udfs/src/spark_udfs/erasure/job.py, with spark-udfs on the cluster (bootstrap action). */
  readonly jobUri: string;
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

export class EmrErasureRunner implements ErasureRunner {
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
    const folder = `${this.config.workUri}/${order.runId}`;
    const certificateUri = `${folder}/certificate.json`;
    const progressUri = `${folder}/progress.json`;
    const finished = await this.text(certificateUri);
    if (finished !== undefined) return outcomeOfCertificate(finished, order);
    const stepName = `erasure-${order.runId}`;
    let stepId = await this.findStep(stepName);
    if (!stepId) {
      const orderUri = `${folder}/order.json`;
      await this.s3.send(new PutObjectCommand({ ...location(orderUri), Body: JSON.stringify(parseContract('erasure-order', order)), ContentType: 'application/json', ServerSideEncryption: 'aws:kms' }));
      const added = await this.emr.send(
        new AddJobFlowStepsCommand({
          JobFlowId: this.config.clusterId,
          Steps: [
            {
              Name: stepName,
              ActionOnFailure: 'CONTINUE',
              HadoopJarStep: { Jar: 'command-runner.jar', Args: ['spark-submit', '--deploy-mode', 'cluster', this.config.jobUri, '--order', orderUri, '--certificate', certificateUri, '--progress', progressUri] },
            },
          ],
        }),
      );
      stepId = added.StepIds?.[0];
      if (!stepId) return { kind: 'crashed', reason: 'AddJobFlowSteps returned no step id' };
    }
    const schedule = { baseDelayMs: this.poll.firstDelayMs, maxDelayMs: this.poll.maxDelayMs, jitter: 'none' } as const;
    let polls = 0;
    let reported = '';
    for (;;) {
      if (onProgress) {
        const text = await this.text(progressUri);
        const tables = parseProgress(text);
        if (text !== undefined && tables && text !== reported) {
          reported = text;
          onProgress(tables);
        }
      }
      const step = (await this.emr.send(new DescribeStepCommand({ ClusterId: this.config.clusterId, StepId: stepId }))).Step;
      const state = step?.Status?.State;
      if (state && ENDED.has(state)) {
        if (state === 'COMPLETED') {
          const certificate = await this.text(certificateUri);
          return certificate !== undefined ? outcomeOfCertificate(certificate, order) : { kind: 'crashed', reason: `EMR step ${stepId} completed without a certificate at ${certificateUri}` };
        }
        const failure = step?.Status?.FailureDetails;
        const details = [failure?.Reason, failure?.Message, failure?.LogFile ? `log: ${failure.LogFile}` : undefined].filter(Boolean).join('; ');
        return { kind: 'crashed', reason: `EMR step ${stepId} ${state}${details ? `: ${details}` : ''}` };
      }
      await sleep(backoffDelayMs(++polls, schedule));
    }
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
