/**
 * The erasure step function (api/erasure/steps.ts), as the scheduled Lambda calls it: each call advances the open
 * requests one step and returns. Against moto's EMR and S3, with the ledger on SQLite and on DynamoDB (moto).
 * moto records steps but never runs them: the test moves a step's state through the launcher's control port and
 * writes what the job would write (progress, the certificate), as emrRunner.test.ts does. Between calls nothing
 * lives in memory: every call gets a fresh worker and runner, as a new Lambda instance would.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EMRClient, ListStepsCommand, RunJobFlowCommand } from '@aws-sdk/client-emr';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Principal } from '../../api/auth/apiKeys.ts';
import { DynamoErasureLedger, ensureTable } from '../../api/erasure/dynamoLedger.ts';
import { EmrErasureRunner } from '../../api/erasure/emrRunner.ts';
import type { ErasureLedger, ErasureRequest } from '../../api/erasure/ledger.ts';
import { TableRegistry } from '../../api/erasure/registry.ts';
import { ErasureRequests } from '../../api/erasure/requests.ts';
import { SqliteErasureLedger } from '../../api/erasure/sqliteLedger.ts';
import { advanceErasures, type ErasureStepSummary } from '../../api/erasure/steps.ts';
import { ErasureSuppression } from '../../api/erasure/suppression.ts';
import { ErasureWorker } from '../../api/erasure/worker.ts';
import { createLogger } from '../../api/observability/logger.ts';
import goldenCertificate from '../../contracts/golden/erasure-certificate/valid-verified.json' with { type: 'json' };
import { engineOf, keyringOf, TEST_POLICIES } from '../support/engine.ts';
import { startMoto, TEST_REGION, type Moto } from '../support/moto.ts';

const TABLE = 'glue.crm.customers';
let moto: Moto;
let clusterId: string;
let emr: EMRClient;
let s3: S3Client;
let ledgers = 0;

beforeAll(async () => {
  moto = await startMoto();
  emr = new EMRClient({ region: TEST_REGION, endpoint: moto.endpoint });
  s3 = new S3Client({ region: TEST_REGION, endpoint: moto.endpoint, forcePathStyle: true });
  await s3.send(new CreateBucketCommand({ Bucket: 'erasure', CreateBucketConfiguration: { LocationConstraint: TEST_REGION } }));
  const cluster = await emr.send(
    new RunJobFlowCommand({ Name: 'erasure-steps', ReleaseLabel: 'emr-7.5.0', JobFlowRole: 'EMR_EC2_DefaultRole', ServiceRole: 'EMR_DefaultRole', Instances: { KeepJobFlowAliveWhenNoSteps: true, InstanceCount: 1, MasterInstanceType: 'm5.xlarge' } }),
  );
  clusterId = cluster.JobFlowId!;
}, 60_000);
afterAll(async () => moto.stop());

/** Where a ledger lives and how another instance opens it. */
const STORES: { name: string; fresh(): Promise<() => ErasureLedger> }[] = [
  {
    name: 'SQLite',
    fresh: () => {
      const file = join(mkdtempSync(join(tmpdir(), 'steps-')), 'ledger.db');
      return Promise.resolve(() => new SqliteErasureLedger(file));
    },
  },
  {
    name: 'DynamoDB (moto)',
    fresh: async () => {
      const table = `erasure-steps-${++ledgers}`;
      await ensureTable({ table, region: TEST_REGION, endpoint: moto.endpoint });
      return () => new DynamoErasureLedger({ table, region: TEST_REGION, endpoint: moto.endpoint });
    },
  },
];

const keyring = keyringOf([{ version: 1, state: 'active', root: new Uint8Array(64).fill(7) }]);
const registry = new TableRegistry({ type: 'glue', name: 'glue', warehouse: 's3://lake/warehouse' }, [{ name: TABLE, columns: { email: 'email' } }]);
const officer: Principal = { kind: 'api-key', id: 'officer', name: 'officer', roles: new Set(['privacy-officer']), contexts: undefined };
const logger = createLogger('silent');

/** One scheduled invocation on a fresh instance: its own ledger client, worker and runner; nothing kept from the last. */
async function invoke(open: () => ErasureLedger, { maxAttempts = 3, retrySeconds = 0 } = {}): Promise<ErasureStepSummary> {
  const ledger = open();
  try {
    const suppression = new ErasureSuppression(ledger, engineOf(keyring), keyring, { cacheSeconds: 5 });
    const runner = new EmrErasureRunner({ clusterId, jobUri: 's3://erasure/jobs/erasure_job.py', workUri: 's3://erasure/runs', region: TEST_REGION, endpoint: moto.endpoint });
    const worker = new ErasureWorker(ledger, registry, suppression, TEST_POLICIES, runner, { maxAttempts, pollSeconds: 60, orphanGraceSeconds: 0, retrySeconds }, logger);
    return await advanceErasures({ ledger, worker, runner, logger });
  } finally {
    await ledger.close();
  }
}

async function file(open: () => ErasureLedger, reference: string): Promise<ErasureRequest> {
  const ledger = open();
  try {
    const suppression = new ErasureSuppression(ledger, engineOf(keyring), keyring, { cacheSeconds: 5 });
    const { request } = await new ErasureRequests(ledger, suppression, TEST_POLICIES, registry).file(officer, { reference, reason: 'gdpr-art17-1a', subjects: [{ context: 'email', value: `${reference.toLowerCase()}@example.com` }] });
    return request;
  } finally {
    await ledger.close();
  }
}

async function read(open: () => ErasureLedger, id: string): Promise<{ request: ErasureRequest; actions: string[] }> {
  const ledger = open();
  try {
    const request = (await ledger.get(id))!;
    const actions = (await ledger.auditEntries()).filter((e) => e.requestId === id).map((e) => e.action);
    return { request, actions };
  } finally {
    await ledger.close();
  }
}

async function stepsOf(runId: string): Promise<{ Id?: string; Status?: { State?: string } }[]> {
  const all = [];
  let marker: string | undefined;
  do {
    const page = await emr.send(new ListStepsCommand({ ClusterId: clusterId, Marker: marker }));
    all.push(...(page.Steps ?? []));
    marker = page.Marker;
  } while (marker);
  return all.filter((step) => step.Name === `erasure-${runId}`);
}

const put = (runId: string, name: string, body: string) => s3.send(new PutObjectCommand({ Bucket: 'erasure', Key: `runs/${runId}/${name}`, Body: body }));

describe.each(STORES)('erasure steps, ledger on $name', (store) => {
  it('takes a request from received to submitted, leaves it while the step runs (showing progress), then verifies it with the certificate', async () => {
    const open = await store.fresh();
    const filed = await file(open, 'DSR-STEP-OK');

    const first = await invoke(open);
    expect(first.submitted).toHaveLength(1);
    const runId = first.submitted[0]!;
    const { request: submitted } = await read(open, filed.id);
    expect(submitted).toMatchObject({ status: 'running', runId, attempts: 1 });
    const steps = await stepsOf(runId);
    expect(steps.map((s) => s.Id)).toEqual([submitted.stepId]);
    const order = JSON.parse(await (await s3.send(new GetObjectCommand({ Bucket: 'erasure', Key: `runs/${runId}/order.json` }))).Body!.transformToString()) as { requestIds: string[]; tables: { name: string }[] };
    expect(order).toMatchObject({ requestIds: [filed.id], tables: [{ name: TABLE }] });

    // The step runs: a call checks it once and returns; nothing is submitted again.
    expect(await invoke(open)).toEqual({ submitted: [], running: [runId], finished: [] });
    await put(runId, 'progress.json', JSON.stringify([{ table: TABLE, status: 'running' }]));
    expect(await invoke(open)).toEqual({ submitted: [], running: [runId], finished: [] });
    expect((await read(open, filed.id)).request).toMatchObject({ status: 'running', stepId: submitted.stepId, tables: [{ table: TABLE, status: 'running' }] });
    expect(await stepsOf(runId)).toHaveLength(1);
    // A report that went back (the step's job restarted its tables) moves nothing back.
    await put(runId, 'progress.json', JSON.stringify([{ table: TABLE, status: 'pending' }]));
    expect(await invoke(open)).toEqual({ submitted: [], running: [runId], finished: [] });
    expect((await read(open, filed.id)).request.tables).toEqual([{ table: TABLE, status: 'running' }]);

    await put(runId, 'certificate.json', JSON.stringify({ ...goldenCertificate, runId, requestIds: [filed.id] }));
    await moto.setStepState(submitted.stepId!, 'COMPLETED');
    expect(await invoke(open)).toEqual({ submitted: [], running: [], finished: [runId] });
    const { request: verified, actions } = await read(open, filed.id);
    expect(verified).toMatchObject({ status: 'verified', runId, tables: [{ table: TABLE, status: 'verified' }] });
    expect(verified.certificate).toMatchObject({ runId, tables: [{ snapshotBefore: '9130679734744880546' }] });
    expect(actions).toEqual(['erasure.filed', 'erasure.started', 'erasure.submitted', 'erasure.verified']);
    // Done: later calls find nothing to do.
    expect(await invoke(open)).toEqual({ submitted: [], running: [], finished: [] });
  });

  it('sends a failed step back for another attempt with its reason, then fails the request after the last attempt', async () => {
    const open = await store.fresh();
    const filed = await file(open, 'DSR-STEP-FAILS');
    for (let attempt = 1; attempt <= 2; attempt++) {
      const { submitted } = await invoke(open, { maxAttempts: 2 });
      expect(submitted).toHaveLength(1);
      const { request } = await read(open, filed.id);
      expect(request).toMatchObject({ status: 'running', runId: submitted[0], attempts: attempt });
      await moto.setStepState(request.stepId!, 'FAILED', { Reason: 'Container killed', Message: `attempt ${attempt}` });
      // The retry waits its backoff (an hour here): the call that writes the outcome submits nothing new.
      expect(await invoke(open, { maxAttempts: 2, retrySeconds: 3600 })).toEqual({ submitted: [], running: [], finished: submitted });
      const { request: after } = await read(open, filed.id);
      expect(after).toMatchObject({ status: attempt < 2 ? 'received' : 'failed', attempts: attempt, stepId: undefined });
      expect(after.error).toBe(`EMR step ${request.stepId} FAILED: Container killed; attempt ${attempt}`);
    }
    expect((await read(open, filed.id)).actions).toEqual(['erasure.filed', 'erasure.started', 'erasure.submitted', 'erasure.retry', 'erasure.started', 'erasure.submitted', 'erasure.failed']);
  });

  it('submits once when two invocations overlap: the request is claimed by one, the other leaves it', async () => {
    const open = await store.fresh();
    const filed = await file(open, 'DSR-STEP-TWICE');
    const [one, two] = await Promise.all([invoke(open), invoke(open)]);
    const runs = [...one.submitted, ...two.submitted];
    expect(runs).toHaveLength(1);
    const { request, actions } = await read(open, filed.id);
    expect(request).toMatchObject({ status: 'running', runId: runs[0], attempts: 1 });
    expect((await stepsOf(runs[0]!)).map((s) => s.Id)).toEqual([request.stepId]);
    expect(actions).toEqual(['erasure.filed', 'erasure.started', 'erasure.submitted']);

    // Two overlapping checks of the ended run write its outcome once.
    await put(runs[0]!, 'certificate.json', JSON.stringify({ ...goldenCertificate, runId: runs[0], requestIds: [filed.id] }));
    await moto.setStepState(request.stepId!, 'COMPLETED');
    await Promise.all([invoke(open), invoke(open)]);
    const done = await read(open, filed.id);
    expect(done.request.status).toBe('verified');
    expect(done.actions).toEqual(['erasure.filed', 'erasure.started', 'erasure.submitted', 'erasure.verified']);
  });
});
