/**
 * The Spark artifacts for EMR end to end against moto over HTTP: `npm run package` (scripts/package.ts) builds
 * them, deploy's upload step puts them in the bucket of a NAME-artifacts stack (bootstrap.yaml on moto's
 * CloudFormation), and what is in S3 is downloaded and compared by SHA-256 with the manifest and dist/.
 * `npm run infra -- submit` runs as a child process: the step it adds is read back from moto (ListSteps,
 * DescribeStep) and driven to COMPLETED or FAILED through the moto launcher's control port, since moto records
 * steps but never runs them; what is tested is the step's arguments, the following, and the exit codes.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { DescribeStepCommand, EMRClient, ListStepsCommand, RunJobFlowCommand } from '@aws-sdk/client-emr';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JOB_NAMES, MANIFEST_FILE, artifactKey, jobSparkSubmit, parseManifest, type SparkManifest } from '../../infra/artifacts/manifest.ts';
import { sparkArtifacts, uploadSparkArtifacts } from '../../infra/artifacts/upload.ts';
import { StackOperations } from '../../infra/deploy/stack.ts';
import { startMoto, TEST_REGION, type Moto } from '../support/moto.ts';

const execute = promisify(execFile);
const STACK = 'sparkart';

let moto: Moto;
let s3: S3Client;
let emr: EMRClient;
let bucket: string;
let clusterId: string;
let dist: string;
let manifest: SparkManifest;
let firstUpload: string;

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

async function node(script: string, ...args: string[]): Promise<Ran> {
  return execute('node_modules/.bin/tsx', [script, ...args], { env: { ...process.env, ...moto.env, NODE_NO_WARNINGS: '1' }, maxBuffer: 16 * 1024 * 1024 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: unknown) => {
      const failed = error as Ran;
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    },
  );
}

const infra = (...args: string[]): Promise<Ran> => node('infra/cli.ts', ...args);
const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
const lines: string[] = [];
const output = { write: (text: string) => lines.push(text) };

async function bytesAt(key: string): Promise<Buffer> {
  const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await object.Body!.transformToByteArray());
}

/** The step submit added, once it is on the cluster. */
async function newStep(known: ReadonlySet<string>): Promise<{ id: string; args: string[] }> {
  for (let i = 0; i < 400; i++) {
    const step = ((await emr.send(new ListStepsCommand({ ClusterId: clusterId }))).Steps ?? []).find((candidate) => !known.has(candidate.Id!));
    if (step) return { id: step.Id!, args: step.Config?.Args ?? [] };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('submit added no step');
}

async function stepIds(): Promise<Set<string>> {
  return new Set(((await emr.send(new ListStepsCommand({ ClusterId: clusterId }))).Steps ?? []).map((step) => step.Id!));
}

/** `infra submit` as a child whose output can be waited on while it follows its step. */
function following(...args: string[]): { printed: (pattern: RegExp) => Promise<void>; done: Promise<Ran> } {
  const child = spawn('node_modules/.bin/tsx', ['infra/cli.ts', ...args], { env: { ...process.env, ...moto.env, NODE_NO_WARNINGS: '1' } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<Ran>((resolve) => child.on('close', (code) => {
      resolve({ code: code ?? -1, stdout, stderr });
    }));
  const printed = async (pattern: RegExp): Promise<void> => {
    for (let i = 0; i < 1200 && !pattern.test(stdout); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(stdout).toMatch(pattern);
  };
  return { printed, done };
}

beforeAll(async () => {
  moto = await startMoto();
  const region = { region: TEST_REGION, endpoint: moto.endpoint };
  s3 = new S3Client({ ...region, forcePathStyle: true });
  emr = new EMRClient(region);
  dist = mkdtempSync(join(tmpdir(), 'spark-dist-'));
  const packaged = await node('scripts/package.ts', '--out', dist);
  expect(packaged.stderr).toBe('');
  expect(packaged.code).toBe(0);
  expect(packaged.stdout).toMatch(/spark-udfs: building the wheel/);
  manifest = parseManifest(readFileSync(join(dist, MANIFEST_FILE), 'utf8'), 'manifest');
  // The artifacts stack as deploy creates it, then deploy's upload step.
  const stacks = new StackOperations(new CloudFormationClient(region), output, 100);
  const bootstrap = await stacks.deploy({ stackName: `${STACK}-artifacts`, templateBody: readFileSync('infra/cloudformation/bootstrap.yaml', 'utf8'), parameters: { EnvironmentName: STACK } });
  bucket = bootstrap.outputs.ArtifactsBucketName!;
  firstUpload = await uploadSparkArtifacts(s3, bucket, sparkArtifacts(output, dist), output);
  const cluster = await emr.send(
    new RunJobFlowCommand({ Name: 'submit-tests', ReleaseLabel: 'emr-7.5.0', JobFlowRole: 'EMR_EC2_DefaultRole', ServiceRole: 'EMR_DefaultRole', Instances: { KeepJobFlowAliveWhenNoSteps: true, InstanceCount: 1, MasterInstanceType: 'm5.xlarge' } }),
  );
  clusterId = cluster.JobFlowId!;
}, 240_000);
afterAll(async () => {
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- undefined when beforeAll failed
  await moto?.stop();
});

describe('npm run package', () => {
  it('builds both wheels, a zip of each for --py-files, the three entry scripts and a manifest that describes them', () => {
    expect(Object.keys(manifest.packages).sort()).toEqual(['spark-udfs', 'stream-consumer']);
    expect(readdirSync(dist).sort()).toEqual([...manifest.files.map((file) => file.name), MANIFEST_FILE].sort());
    for (const file of manifest.files) {
      const bytes = readFileSync(join(dist, file.name));
      expect({ name: file.name, sha256: sha256(bytes), bytes: bytes.length }).toEqual({ name: file.name, sha256: file.sha256, bytes: file.bytes });
    }
    expect(manifest.files.filter((file) => file.kind === 'entry').map((file) => file.name).sort()).toEqual(['batch.py', 'erasure.py', 'maintain.py', 'rekey.py', 'stream.py']);
    expect(manifest.jobs.stream.pyFiles).toEqual([`spark_udfs-${manifest.packages['spark-udfs']!.version}.zip`, `stream_consumer-${manifest.packages['stream-consumer']!.version}.zip`]);
    // The entry scripts import the package absolutely: spark-submit runs them with no parent package.
    for (const job of JOB_NAMES) expect(readFileSync(join(dist, manifest.jobs[job].entry), 'utf8')).not.toMatch(/^from \./m);
    expect(manifest.jobs.batch.sparkSubmit).toEqual(jobSparkSubmit(manifest, 'batch', '{artifacts}', { config: '{config}' }));
    expect(manifest.jobs.batch.sparkSubmit.slice(0, 3)).toEqual(['spark-submit', '--deploy-mode', 'cluster']);
  });

  it('gives the same bytes when run again on the same sources, so deploy uploads nothing new', async () => {
    const again = mkdtempSync(join(tmpdir(), 'spark-dist-'));
    expect((await node('scripts/package.ts', '--out', again)).code).toBe(0);
    expect(readFileSync(join(again, MANIFEST_FILE), 'utf8')).toBe(readFileSync(join(dist, MANIFEST_FILE), 'utf8'));
  });

  it('refuses to replace a folder that is not an earlier build, and leaves it as it was', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'not-a-build-'));
    writeFileSync(join(folder, 'notes.txt'), 'keep me');
    const refused = await node('scripts/package.ts', '--out', folder);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('holds files but no manifest.json of an earlier build');
    expect(readdirSync(folder)).toEqual(['notes.txt']);
  });
});

describe("deploy's upload of the Spark artifacts", () => {
  it('put every file of the manifest under spark/<sha256>/<name>, the same bytes, and the manifest beside them', async () => {
    for (const file of manifest.files) {
      const uploaded = await bytesAt(artifactKey('spark', file));
      expect({ name: file.name, sha256: sha256(uploaded) }).toEqual({ name: file.name, sha256: file.sha256 });
      expect(uploaded.equals(readFileSync(join(dist, file.name)))).toBe(true);
    }
    const local = readFileSync(join(dist, MANIFEST_FILE));
    expect((await bytesAt('spark/manifest.json')).equals(local)).toBe(true);
    expect(firstUpload).toBe(`spark/manifests/${sha256(local)}.json`);
    expect((await bytesAt(firstUpload)).equals(local)).toBe(true);
    const listed = ((await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'spark/' }))).Contents ?? []).map((object) => object.Key!).sort();
    expect(listed).toEqual([...new Set([...manifest.files.map((file) => artifactKey('spark', file)), 'spark/manifest.json', firstUpload])].sort());
  });

  it('uploads nothing again for the same build', async () => {
    lines.length = 0;
    await uploadSparkArtifacts(s3, bucket, sparkArtifacts(output, dist), output);
    expect(lines.filter((line) => line.includes('uploaded (')).length).toBe(0);
    expect(lines.filter((line) => line.endsWith(': already uploaded\n')).length).toBe(manifest.files.length);
  });

  it('refuses a file changed after npm run package, before uploading anything', async () => {
    const changed = mkdtempSync(join(tmpdir(), 'spark-dist-'));
    for (const name of readdirSync(dist)) writeFileSync(join(changed, name), readFileSync(join(dist, name)));
    writeFileSync(join(changed, 'batch.py'), `${readFileSync(join(dist, 'batch.py'), 'utf8')}# edited\n`);
    const before = (await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'spark/' }))).KeyCount;
    await expect(uploadSparkArtifacts(s3, bucket, sparkArtifacts(output, changed), output)).rejects.toThrow(/batch\.py does not match its manifest/);
    expect((await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'spark/' }))).KeyCount).toBe(before);
  });
});

describe('npm run infra -- submit', () => {
  const base = () => `s3://${bucket}/spark`;
  const location = (name: string) => {
    const file = manifest.files.find((candidate) => candidate.name === name)!;
    return `${base()}/${artifactKey('', file).slice(1)}`;
  };

  it('adds the batch step from the stack\'s artifacts (entry script, --py-files, the config) and exits 0 once it COMPLETED', async () => {
    const known = await stepIds();
    const running = following('submit', 'batch', '--cluster', clusterId, '--config', 's3://my-config/batch.json', '--stack', STACK, '--endpoint', moto.endpoint);
    const step = await newStep(known);
    expect(step.args).toEqual(['spark-submit', '--deploy-mode', 'cluster', '--conf', 'spark.sql.extensions=org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions', '--py-files', location('spark_udfs-0.1.0.zip'), location('batch.py'), '--config', 's3://my-config/batch.json']);
    const { Step } = await emr.send(new DescribeStepCommand({ ClusterId: clusterId, StepId: step.id }));
    expect(Step?.Config?.Jar).toBe('command-runner.jar');
    expect(Step?.ActionOnFailure).toBe('CONTINUE');
    // Each change is made once submit has printed the state before it, so it must follow every one.
    // moto starts a step PENDING or, first on an idle cluster, RUNNING.
    await running.printed(new RegExp(`${step.id}: \\w+`));
    await moto.setStepState(step.id, 'RUNNING');
    await running.printed(new RegExp(`${step.id}: RUNNING`));
    await moto.setStepState(step.id, 'COMPLETED');
    const ran = await running.done;
    expect(ran.stderr).toBe('');
    expect(ran.code).toBe(0);
    expect(ran.stdout).toContain(`${clusterId}: step ${step.id} added: batch (spark-udfs 0.1.0, stream-consumer 0.1.0)`);
    expect(ran.stdout).toMatch(new RegExp(`${step.id}: RUNNING \\(\\d+ s\\)\\n(.*\\n)*${step.id}: COMPLETED`));
  });

  it('the stream step carries both zips; a FAILED step exits 1 with EMR\'s reason, message and log file', async () => {
    const known = await stepIds();
    const running = following('submit', 'stream', '--cluster', clusterId, '--config', 's3://my-config/stream.json', '--artifacts', base(), '--endpoint', moto.endpoint);
    const step = await newStep(known);
    expect(step.args).toContain(`${location('spark_udfs-0.1.0.zip')},${location('stream_consumer-0.1.0.zip')}`);
    expect(step.args.slice(-3)).toEqual([location('stream.py'), '--config', 's3://my-config/stream.json']);
    await running.printed(new RegExp(`${step.id}: \\w+`));
    await moto.setStepState(step.id, 'FAILED', { Reason: 'Spark application failed', Message: 'exit code 2', LogFile: 's3://logs/steps/stderr.gz' });
    const ran = await running.done;
    expect(ran.code).toBe(1);
    expect(ran.stderr).toBe(`${step.id} FAILED: Spark application failed; exit code 2; log: s3://logs/steps/stderr.gz\n`);
  });

  it('the erasure step takes the order, certificate and progress, as the EMR runner passes them', async () => {
    const known = await stepIds();
    const running = following('submit', 'erasure', '--cluster', clusterId, '--order', 's3://work/run-1/order.json', '--certificate', 's3://work/run-1/certificate.json', '--artifacts', base(), '--endpoint', moto.endpoint);
    const step = await newStep(known);
    expect(step.args.slice(-7)).toEqual([location('erasure.py'), '--order', 's3://work/run-1/order.json', '--certificate', 's3://work/run-1/certificate.json', '--progress', 's3://work/run-1/progress.json']);
    await running.printed(new RegExp(`${step.id}: \\w+`));
    await moto.setStepState(step.id, 'CANCELLED');
    const ran = await running.done;
    expect(ran.code).toBe(1);
    expect(ran.stderr).toBe(`${step.id} CANCELLED\n`);
  });

  it('the maintenance step takes the registry and the report; --timeout stops following (exit 1) and leaves the step running', async () => {
    const known = await stepIds();
    const running = following('submit', 'maintain', '--cluster', clusterId, '--registry', 's3://cfg/registry.json', '--report', 's3://work/maintenance.json', '--artifacts', base(), '--timeout', '0.05', '--endpoint', moto.endpoint);
    const step = await newStep(known);
    expect(step.args.slice(-5)).toEqual([location('maintain.py'), '--registry', 's3://cfg/registry.json', '--report', 's3://work/maintenance.json']);
    const ran = await running.done;
    expect(ran.code).toBe(1);
    expect(ran.stderr).toMatch(new RegExp(`^${step.id}: still \\w+ after 0 min; the step keeps running on ${clusterId}`));
    await moto.setStepState(step.id, 'CANCELLED');
  });

  it('usage mistakes exit 2 with the usage and add no step; artifacts that were never uploaded exit 1 naming the manifest', async () => {
    const known = await stepIds();
    const cases: [string[], RegExp][] = [
      [['submit'], /^submit needs a job/],
      [['submit', 'nightly', '--cluster', clusterId, '--config', 's3://cfg/j.json', '--stack', STACK], /^submit needs a job/],
      [['submit', 'batch', '--config', 's3://cfg/j.json', '--stack', STACK], /^submit needs --cluster/],
      [['submit', 'batch', '--cluster', clusterId, '--stack', STACK], /^batch needs --config/],
      [['submit', 'batch', '--cluster', clusterId, '--config', 'job.json', '--stack', STACK], /^--config must be an s3:\/\/ URI/],
      [['submit', 'batch', '--cluster', clusterId, '--config', 's3://cfg/j.json'], /^submit needs either --stack/],
      [['submit', 'batch', '--cluster', clusterId, '--config', 's3://cfg/j.json', '--stack', STACK, '--artifacts', base()], /^submit needs either --stack/],
      [['submit', 'erasure', '--cluster', clusterId, '--config', 's3://cfg/j.json', '--stack', STACK], /^erasure needs --order/],
      [['submit', 'rekey', '--cluster', clusterId, '--registry', 's3://cfg/r.json', '--report', 's3://cfg/out.json', '--stack', STACK], /^rekey needs --api/],
      [['submit', 'maintain', '--cluster', clusterId, '--registry', 's3://cfg/r.json', '--report', 's3://cfg/out.json', '--config', 's3://cfg/j.json', '--stack', STACK], /^maintain takes no --config/],
      [['submit', 'batch', '--cluster', clusterId, '--config', 's3://cfg/j.json', '--stack', STACK, '--timeout', 'soon'], /^--timeout: minutes/],
    ];
    for (const [args, message] of cases) {
      const ran = await infra(...args, '--endpoint', moto.endpoint);
      expect({ args, code: ran.code }).toEqual({ args, code: 2 });
      expect(ran.stderr).toMatch(message);
      expect(ran.stderr).toContain('usage:');
    }
    const missing = await infra('submit', 'batch', '--cluster', clusterId, '--config', 's3://cfg/j.json', '--artifacts', `s3://${bucket}/elsewhere`, '--endpoint', moto.endpoint);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`s3://${bucket}/elsewhere/manifest.json does not exist`);
    expect(await stepIds()).toEqual(known);
    const help = await infra('submit', '--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage:\n {2}infra submit batch\|stream/);
  });
});
