/**
 * The EMR runner against moto's EMR and S3 over HTTP. moto records steps but never runs them, so each test
 * drives the step's state itself (through the launcher's control port) and writes the certificate the job
 * would have written: what is tested is the runner's side, the submitted step, polling, re-attaching and
 * the failure reasons reaching the request.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EMRClient, ListStepsCommand, RunJobFlowCommand } from '@aws-sdk/client-emr';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmrErasureRunner } from '../../api/erasure/emrRunner.ts';
import goldenCertificate from '../../contracts/golden/erasure-certificate/valid-verified.json' with { type: 'json' };
import type { ErasureOrder } from '../../api/erasure/runner.ts';
import { SqliteErasureLedger } from '../../api/erasure/sqliteLedger.ts';
import { ErasureRequests } from '../../api/erasure/requests.ts';
import { TableRegistry } from '../../api/erasure/registry.ts';
import { ErasureWorker } from '../../api/erasure/worker.ts';
import { ErasureSuppression } from '../../api/erasure/suppression.ts';
import { createLogger } from '../../api/observability/logger.ts';
import { loadConfig } from '../../api/config/config.ts';
import { writeLocalCatalog } from '../support/catalog.ts';
import { engineOf, keyringOf, TEST_POLICIES } from '../support/engine.ts';
import { startMoto, TEST_REGION, type Moto } from '../support/moto.ts';

let moto: Moto;
let clusterId: string;
let emr: EMRClient;
let s3: S3Client;

beforeAll(async () => {
  moto = await startMoto();
  emr = new EMRClient({ region: TEST_REGION, endpoint: moto.endpoint });
  s3 = new S3Client({ region: TEST_REGION, endpoint: moto.endpoint, forcePathStyle: true });
  await s3.send(new CreateBucketCommand({ Bucket: 'erasure', CreateBucketConfiguration: { LocationConstraint: TEST_REGION } }));
  const cluster = await emr.send(
    new RunJobFlowCommand({ Name: 'erasure-tests', ReleaseLabel: 'emr-7.5.0', JobFlowRole: 'EMR_EC2_DefaultRole', ServiceRole: 'EMR_DefaultRole', Instances: { KeepJobFlowAliveWhenNoSteps: true, InstanceCount: 1, MasterInstanceType: 'm5.xlarge' } }),
  );
  clusterId = cluster.JobFlowId!;
}, 60_000);
afterAll(async () => moto.stop());

const runner = () => new EmrErasureRunner({ clusterId, jobUri: 's3://erasure/jobs/erasure_job.py', workUri: 's3://erasure/runs', region: TEST_REGION, endpoint: moto.endpoint }, { firstDelayMs: 50, maxDelayMs: 200 });

function order(runId: string): ErasureOrder {
  return { runId, requestIds: ['er-1'], subjects: [{ context: 'email', pseudonyms: ['s1.AAAA'] }], tables: [{ name: 'glue.crm.customers', columns: { email: 'email' } }], catalog: { name: 'glue', type: 'glue', warehouse: 's3://lake/warehouse' }, orphanGraceSeconds: 3600, refs: 'drop' };
}

async function stepOf(runId: string): Promise<{ id: string; args: string[] }> {
  for (let i = 0; i < 100; i++) {
    const steps = (await emr.send(new ListStepsCommand({ ClusterId: clusterId }))).Steps ?? [];
    const step = steps.find((s) => s.Name === `erasure-${runId}`);
    if (step) return { id: step.Id!, args: step.Config?.Args ?? [] };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('no step was added');
}

async function stepCount(): Promise<number> {
  return ((await emr.send(new ListStepsCommand({ ClusterId: clusterId }))).Steps ?? []).length;
}

/** What the job writes: the golden certificate of contracts/ for this run. */
const certificate = (runId: string) => JSON.stringify({ ...goldenCertificate, runId });

describe('EMR erasure runner', () => {
  it('puts the order in S3, adds a spark-submit step, polls until COMPLETED, and returns the certificate', async () => {
    const progress: unknown[] = [];
    const running = runner().run(order('run-ok'), (tables) => progress.push(tables));
    const step = await stepOf('run-ok');
    expect(step.args).toEqual([
      'spark-submit',
      '--deploy-mode',
      'cluster',
      's3://erasure/jobs/erasure_job.py',
      '--order',
      's3://erasure/runs/run-ok/order.json',
      '--certificate',
      's3://erasure/runs/run-ok/certificate.json',
      '--progress',
      's3://erasure/runs/run-ok/progress.json',
    ]);
    const stored = await s3.send(new GetObjectCommand({ Bucket: 'erasure', Key: 'runs/run-ok/order.json' }));
    expect(JSON.parse(await stored.Body!.transformToString())).toEqual(order('run-ok'));
    let settled = false;
    void running.then(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(settled).toBe(false); // RUNNING: still polling
    // The job reports per-table progress in S3 while it runs; the runner passes it on.
    await s3.send(new PutObjectCommand({ Bucket: 'erasure', Key: 'runs/run-ok/progress.json', Body: JSON.stringify([{ table: 'glue.crm.customers', status: 'running' }]) }));
    for (let i = 0; i < 50 && progress.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(progress).toEqual([[{ table: 'glue.crm.customers', status: 'running' }]]);
    await s3.send(new PutObjectCommand({ Bucket: 'erasure', Key: 'runs/run-ok/certificate.json', Body: certificate('run-ok') }));
    await moto.setStepState(step.id, 'COMPLETED');
    expect(await running).toEqual({ kind: 'completed', certificate: JSON.parse(certificate('run-ok')) as unknown });
  });

  it('ships the spark-udfs zip with --py-files when configured (PSEUDO_ERASURE_EMR_PY_FILES), before the entry script', async () => {
    const zip = 's3://erasure/spark/0123/spark_udfs-0.1.0.zip';
    const withZip = new EmrErasureRunner({ clusterId, jobUri: 's3://erasure/jobs/erasure_job.py', pyFiles: [zip], workUri: 's3://erasure/runs', region: TEST_REGION, endpoint: moto.endpoint }, { firstDelayMs: 50, maxDelayMs: 200 });
    await withZip.submit(order('run-py-files'));
    const step = await stepOf('run-py-files');
    expect(step.args.slice(0, 6)).toEqual(['spark-submit', '--deploy-mode', 'cluster', '--py-files', zip, 's3://erasure/jobs/erasure_job.py']);
    expect(step.args.slice(6, 8)).toEqual(['--order', 's3://erasure/runs/run-py-files/order.json']);
    await moto.setStepState(step.id, 'CANCELLED');
  });

  it('reads --py-files from the configuration as the scheduled erasure Lambda gets it', () => {
    const base = { PSEUDO_ERASURE_RUNNER: 'emr', PSEUDO_ERASURE_EMR_CLUSTER_ID: 'j-ABC', PSEUDO_ERASURE_EMR_JOB_URI: 's3://a/spark/erasure.py', PSEUDO_ERASURE_EMR_WORK_URI: 's3://w/erasure-runs' };
    const runnerOf = (extra: Record<string, string>) => loadConfig({ ...base, ...extra }).erasure.runner;
    expect(runnerOf({ PSEUDO_ERASURE_EMR_PY_FILES: 's3://a/spark/1/spark_udfs-0.1.0.zip,s3://a/spark/2/more.zip' })).toMatchObject({ kind: 'emr', pyFiles: ['s3://a/spark/1/spark_udfs-0.1.0.zip', 's3://a/spark/2/more.zip'] });
    expect(runnerOf({})).toMatchObject({ kind: 'emr', pyFiles: [] });
    expect(() => runnerOf({ PSEUDO_ERASURE_EMR_PY_FILES: 's3://a/spark/spark_udfs-0.1.0-py3-none-any.whl' })).toThrow(/^PSEUDO_ERASURE_EMR_PY_FILES: must be comma-separated s3:\/\/bucket/);
  });

  it('reports a failed step with EMR\'s reason, message and log file', async () => {
    const running = runner().run(order('run-fails'));
    const step = await stepOf('run-fails');
    await moto.setStepState(step.id, 'FAILED', { Reason: 'Spark application failed', Message: 'Exception in thread main', LogFile: 's3://logs/j-1/steps/s-1/stderr.gz' });
    expect(await running).toEqual({ kind: 'crashed', reason: `EMR step ${step.id} FAILED: Spark application failed; Exception in thread main; log: s3://logs/j-1/steps/s-1/stderr.gz` });
  });

  it('re-attaches to the step of its run after a restart instead of adding another, and takes a certificate already written', async () => {
    const first = runner().run(order('run-again'));
    const step = await stepOf('run-again');
    const before = await stepCount();
    const second = runner().run(order('run-again')); // a new service process, same runId
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await stepCount()).toBe(before);
    await s3.send(new PutObjectCommand({ Bucket: 'erasure', Key: 'runs/run-again/certificate.json', Body: certificate('run-again') }));
    await moto.setStepState(step.id, 'COMPLETED');
    expect((await first).kind).toBe('completed');
    expect((await second).kind).toBe('completed');
    expect((await runner().run(order('run-again'))).kind).toBe('completed'); // finished: no step at all
    expect(await stepCount()).toBe(before);
  });

  it('refuses a certificate whose snapshot id is not an exact integer string, naming the field', async () => {
    const rounded = certificate('run-rounded').replace('"snapshotBefore":"9130679734744880546"', '"snapshotBefore":9130679734744880546');
    expect(rounded).not.toBe(certificate('run-rounded'));
    await s3.send(new PutObjectCommand({ Bucket: 'erasure', Key: 'runs/run-rounded/certificate.json', Body: rounded }));
    expect(await runner().run(order('run-rounded'))).toEqual({ kind: 'crashed', reason: "the job's certificate does not match the contract: erasure-certificate: $.tables[0].snapshotBefore: has the wrong type" });
  });

  it('puts the failure reason into the request, which the worker retries and then marks failed', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'emr-worker-'));
    const catalog = writeLocalCatalog(folder, [{ namespace: 'crm', name: 'customers', columns: { email: 'string' } }]);
    const registryFile = join(folder, 'registry.json');
    writeFileSync(registryFile, JSON.stringify({ catalog: { type: 'jdbc', ...catalog }, tables: [{ name: 'local.crm.customers', columns: { email: 'email' } }] }));
    const registry = await TableRegistry.load(registryFile, TEST_POLICIES);
    const ledger = new SqliteErasureLedger(join(folder, 'ledger.db'));
    const keyring = keyringOf([{ version: 1, state: 'active', root: new Uint8Array(64).fill(7) }]);
    const suppression = new ErasureSuppression(ledger, engineOf(keyring), keyring, { cacheSeconds: 5 });
    const principal = { kind: 'api-key' as const, id: 'officer', name: 'officer', roles: new Set(['privacy-officer' as const]), contexts: undefined };
    const { request } = await new ErasureRequests(ledger, suppression, TEST_POLICIES, registry).file(principal, { reference: 'DSR-1', reason: 'gdpr-art17-1a', subjects: [{ context: 'email', value: 'sentinel@example.com' }] });
    const worker = new ErasureWorker(ledger, registry, suppression, TEST_POLICIES, runner(), { maxAttempts: 2, pollSeconds: 60, orphanGraceSeconds: 0, retrySeconds: 0 }, createLogger('silent'));

    for (let attempt = 1; attempt <= 2; attempt++) {
      const round = worker.runOnce();
      const steps = async () => ((await emr.send(new ListStepsCommand({ ClusterId: clusterId }))).Steps ?? []).filter((s) => s.Status?.State === 'RUNNING' || s.Status?.State === 'PENDING');
      let pending = await steps();
      while (pending.length === 0) pending = await steps();
      await moto.setStepState(pending[0]!.Id!, 'FAILED', { Reason: 'Container killed', Message: `attempt ${attempt}` });
      await round;
      const now = (await ledger.get(request.id))!;
      expect(now).toMatchObject({ status: attempt < 2 ? 'received' : 'failed', attempts: attempt });
      expect(now.error).toContain(`FAILED: Container killed; attempt ${attempt}`);
    }
    expect((await ledger.auditEntries()).map((e) => e.action)).toEqual(['erasure.filed', 'erasure.started', 'erasure.retry', 'erasure.started', 'erasure.failed']);
    await ledger.close();
  }, 60_000);

  it('waits before another attempt, longer after each', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'emr-worker-'));
    const ledger = new SqliteErasureLedger(join(folder, 'ledger.db'));
    const { request } = await ledger.create({ id: 'er-wait', reference: 'DSR-2', reason: 'gdpr-art17-1a', filedBy: 'api-key:officer', subjects: [{ context: 'email', pseudonyms: ['s1.AAAA'] }], tables: [] }, { actor: 'api-key:officer', action: 'erasure.filed', outcome: 'received' });
    await ledger.transition(request.id, { status: 'received', attempts: 1, error: 'verification failed' }, { actor: 'service', action: 'erasure.retry', outcome: 'received' });
    const runs: string[] = [];
    const counting = { description: 'counting', run: (o: ErasureOrder) => {
      runs.push(o.runId);
      return Promise.resolve({ kind: 'crashed' as const, reason: 'no' });
    } };
    const registry = new TableRegistry({ type: 'glue', name: 'glue', warehouse: 's3://lake/w' }, []);
    const keyring = keyringOf([{ version: 1, state: 'active', root: new Uint8Array(64).fill(7) }]);
    const suppression = new ErasureSuppression(ledger, engineOf(keyring), keyring, { cacheSeconds: 5 });
    const worker = (retrySeconds: number) => new ErasureWorker(ledger, registry, suppression, TEST_POLICIES, counting, { maxAttempts: 3, pollSeconds: 60, orphanGraceSeconds: 0, retrySeconds }, createLogger('silent'));
    await worker(3600).runOnce();
    expect(runs).toHaveLength(0);
    await worker(0).runOnce();
    expect(runs).toHaveLength(1);
    await ledger.close();
  }, 60_000);
});
