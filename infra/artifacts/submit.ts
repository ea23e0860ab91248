/**
 * `npm run infra -- submit batch|stream|erasure|maintain|rekey --cluster j-… …`: runs one job of the uploaded Spark artifacts
 * as an EMR step and follows it to the end.
 *
 * The artifacts are those `deploy` uploaded (the manifest at s3://<bucket>/spark/manifest.json, the bucket from
 * the NAME-artifacts stack's outputs) or any s3://bucket/prefix holding a manifest and its files the same way.
 * The step is command-runner.jar with the arguments the manifest's job describes (infra/artifacts/sparkSubmit.ts:
 * cluster deploy mode, Iceberg's extensions, --py-files of the package zips, the entry script, the job's own
 * arguments). DescribeStep is polled with the shared backoff until the step ends; each state change is printed.
 *
 * Exit codes: 0 the step COMPLETED, 1 it FAILED / was CANCELLED / INTERRUPTED (EMR's reason, message and log
 * file printed) or an AWS call failed, 2 usage.
 */
import { parseArgs } from 'node:util';
import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { AddJobFlowStepsCommand, DescribeStepCommand, EMRClient, type StepState } from '@aws-sdk/client-emr';
import { S3Client } from '@aws-sdk/client-s3';
import { backoffDelayMs, sleep } from '../../api/retry/backoff.ts';
import { StackOperations } from '../deploy/stack.ts';
import { JOB_NAMES, SPARK_PREFIX, jobOptions, jobSparkSubmit, type JobName } from './manifest.ts';
import { readUploadedManifest, type Output } from './upload.ts';

export const SUBMIT_USAGE = `usage:
  infra submit batch|stream --cluster j-… --config s3://…/job.json (--stack NAME | --artifacts s3://bucket/prefix) [--endpoint URL]
  infra submit erasure --cluster j-… --order s3://…/order.json --certificate s3://…/certificate.json
                       [--progress s3://…/progress.json] (--stack NAME | --artifacts s3://bucket/prefix) [--endpoint URL]
  infra submit maintain --cluster j-… --registry s3://…/registry.json --report s3://…/report.json (--stack … | --artifacts …)
  infra submit rekey --cluster j-… --registry s3://…/registry.json --api s3://…/api.json --report s3://…/report.json
                     (--stack NAME | --artifacts s3://bucket/prefix) [--endpoint URL]

Adds an EMR step (command-runner.jar spark-submit --deploy-mode cluster, Iceberg's SQL extensions, --py-files
of the package zips, the job's entry script) from the Spark artifacts deploy uploaded (--stack NAME: the
NAME-artifacts bucket, prefix spark) or another s3://bucket/prefix holding manifest.json, then follows the step
until it ends, printing its state changes. The cluster needs the Iceberg classification (iceberg-defaults) and
the packages' dependencies (requests, pyarrow, jsonschema, fastavro; boto3 for stream).

--timeout MINUTES stops following after that long (exit 1; the step keeps running); by default it follows to the end.
--endpoint URL (or PSEUDO_AWS_ENDPOINT) points every client at a local endpoint such as moto;
AWS_REGION picks the region (default eu-west-1).
Exit codes: 0 the step completed, 1 it failed (EMR's reason printed) or an AWS call failed, 2 usage.

examples:
  npm run package && npm run infra -- deploy --stack prod --parameters KeyAdministratorArn=…
  npm run infra -- submit batch --cluster j-2AXXXXXXGAPLF --config s3://my-config/batch.json --stack prod
`;

const ENDED: ReadonlySet<StepState> = new Set(['COMPLETED', 'FAILED', 'CANCELLED', 'INTERRUPTED']);
const S3_URI = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*[^/]))?\/?$/;

class SubmitUsageError extends Error {}

interface Streams {
  readonly stdout: Output;
  readonly stderr: Output;
}

/** Runs `submit`; returns the exit code (never throws). */
export async function runSubmitCommand(argv: readonly string[], streams: Streams = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  try {
    return await submit(argv, streams);
  } catch (error) {
    if (error instanceof SubmitUsageError) {
      streams.stderr.write(`${error.message}\n${SUBMIT_USAGE}`);
      return 2;
    }
    streams.stderr.write(`${error instanceof Error ? `${error.name === 'Error' ? '' : `${error.name}: `}${error.message}` : String(error)}\n`);
    return 1;
  }
}

function s3Uri(option: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (!S3_URI.test(value)) throw new SubmitUsageError(`--${option} must be an s3:// URI`);
  return value;
}

async function submit(argv: readonly string[], { stdout, stderr }: Streams): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        cluster: { type: 'string' },
        config: { type: 'string' },
        order: { type: 'string' },
        certificate: { type: 'string' },
        progress: { type: 'string' },
        registry: { type: 'string' },
        report: { type: 'string' },
        api: { type: 'string' },
        stack: { type: 'string' },
        artifacts: { type: 'string' },
        endpoint: { type: 'string' },
        timeout: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    // parseArgs names the option it could not read, never its value.
    throw new SubmitUsageError(error instanceof Error ? error.message : String(error));
  }
  const { values, positionals } = parsed;
  if (values.help) {
    stdout.write(SUBMIT_USAGE);
    return 0;
  }
  const [, job, ...rest] = positionals;
  if (!job || !(JOB_NAMES as readonly string[]).includes(job)) throw new SubmitUsageError(`submit needs a job: ${JOB_NAMES.join(', ')}`);
  if (rest.length > 0) throw new SubmitUsageError('unexpected arguments after the job');
  const timeoutMinutes = values.timeout === undefined ? undefined : Number(values.timeout);
  if (timeoutMinutes !== undefined && !(Number.isFinite(timeoutMinutes) && timeoutMinutes > 0)) throw new SubmitUsageError('--timeout: minutes, a number above 0');
  const cluster = values.cluster;
  if (!cluster) throw new SubmitUsageError('submit needs --cluster j-…');
  if (!/^j-[A-Z0-9]{1,64}$/.test(cluster)) throw new SubmitUsageError('--cluster: an EMR cluster id, j-…');
  if ((values.stack === undefined) === (values.artifacts === undefined)) throw new SubmitUsageError('submit needs either --stack NAME or --artifacts s3://bucket/prefix');
  const jobValues: Record<string, string> = {};
  for (const option of ['config', 'order', 'certificate', 'progress', 'registry', 'report', 'api'] as const) {
    const value = s3Uri(option, values[option]);
    if (value !== undefined) jobValues[option] = value;
  }
  const { required: wanted, allowed } = jobOptions(job as JobName);
  for (const option of wanted) if (!(option in jobValues)) throw new SubmitUsageError(`${job} needs --${option} s3://…`);
  for (const option of Object.keys(jobValues)) if (!allowed.includes(option)) throw new SubmitUsageError(`${job} takes no --${option}`);
  // The erasure job keeps per-table progress; without --progress it goes beside the certificate.
  if (job === 'erasure' && jobValues.progress === undefined) jobValues.progress = `${jobValues.certificate!.replace(/[^/]*$/, '')}progress.json`;

  const endpoint = values.endpoint ?? process.env.PSEUDO_AWS_ENDPOINT;
  const region = process.env.AWS_REGION ?? 'eu-west-1';
  const local = endpoint ? { endpoint } : {};
  const s3 = new S3Client({ region, ...local, forcePathStyle: endpoint !== undefined });
  const emr = new EMRClient({ region, ...local, maxAttempts: 5 });

  let bucket: string;
  let prefix: string;
  if (values.stack !== undefined) {
    const outputs = await new StackOperations(new CloudFormationClient({ region, ...local }), stdout).outputs(`${values.stack}-artifacts`);
    const name = outputs.ArtifactsBucketName;
    if (!name) throw new Error(`stack ${values.stack}-artifacts has no ArtifactsBucketName output`);
    bucket = name;
    prefix = SPARK_PREFIX;
  } else {
    const match = S3_URI.exec(values.artifacts ?? '');
    if (!match) throw new SubmitUsageError('--artifacts must be s3://bucket/prefix');
    bucket = match[1]!;
    prefix = match[2] ?? '';
    if (!prefix) throw new SubmitUsageError('--artifacts must be s3://bucket/prefix (the folder holding manifest.json)');
  }
  const manifest = await readUploadedManifest(s3, bucket, prefix);
  const args = jobSparkSubmit(manifest, job as JobName, `s3://${bucket}/${prefix}`, jobValues);
  const versions = Object.entries(manifest.packages).map(([name, { version }]) => `${name} ${version}`).join(', ');
  const added = await emr.send(new AddJobFlowStepsCommand({ JobFlowId: cluster, Steps: [{ Name: `${job} (infra submit)`, ActionOnFailure: 'CONTINUE', HadoopJarStep: { Jar: 'command-runner.jar', Args: args } }] }));
  const stepId = added.StepIds?.[0];
  if (!stepId) throw new Error('AddJobFlowSteps returned no step id');
  stdout.write(`${cluster}: step ${stepId} added: ${job} (${versions})\n  ${args.join(' ')}\n`);
  const schedule = endpoint ? { baseDelayMs: 100, maxDelayMs: 1000 } : { baseDelayMs: 5000, maxDelayMs: 60_000 };
  return follow(emr, cluster, stepId, { stdout, stderr }, { ...schedule, ...(timeoutMinutes === undefined ? {} : { timeoutMs: timeoutMinutes * 60_000 }) });
}

/** Polls DescribeStep until the step ends (or `timeoutMs` passes: exit 1, the step left running), printing each new state; 0 when it completed, else 1. */
export async function follow(emr: EMRClient, cluster: string, stepId: string, { stdout, stderr }: Streams, schedule: { baseDelayMs: number; maxDelayMs: number; timeoutMs?: number }): Promise<number> {
  const started = Date.now();
  let shown: string | undefined;
  for (let polls = 0; ; polls++) {
    if (schedule.timeoutMs !== undefined && Date.now() - started >= schedule.timeoutMs) {
      stderr.write(`${stepId}: still ${shown ?? 'not reported'} after ${Math.round(schedule.timeoutMs / 60_000)} min; the step keeps running on ${cluster} (aws emr describe-step, or cancel-steps)\n`);
      return 1;
    }
    if (polls > 0) await sleep(backoffDelayMs(polls, { baseDelayMs: schedule.baseDelayMs, maxDelayMs: schedule.maxDelayMs, jitter: 'none' }));
    const step = (await emr.send(new DescribeStepCommand({ ClusterId: cluster, StepId: stepId }))).Step;
    const state = step?.Status?.State;
    if (!state) continue;
    if (state !== shown) {
      shown = state;
      stdout.write(`${stepId}: ${state} (${Math.round((Date.now() - started) / 1000)} s)\n`);
    }
    if (!ENDED.has(state)) continue;
    if (state === 'COMPLETED') return 0;
    const failure = step.Status?.FailureDetails;
    const details = [failure?.Reason, failure?.Message, failure?.LogFile ? `log: ${failure.LogFile}` : undefined].filter(Boolean).join('; ');
    stderr.write(`${stepId} ${state}${details ? `: ${details}` : ''}\n`);
    return 1;
  }
}
