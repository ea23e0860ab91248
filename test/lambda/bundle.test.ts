/**
 * The built zip (dist/lambda.zip from `npm run build`, made by the global set-up), not the sources: unzipped into
 * a task root of its own and run by `node` child processes as the Lambda runtime would (cwd = task root,
 * AWS_LAMBDA_FUNCTION_NAME set, the handler module imported once per instance, events handed to its export).
 * A small driver reads events as JSON lines on stdin and answers on fd 3, so that the function's own log lines
 * (stdout, stderr) stay apart and can be checked. One configuration per store:
 *   - no erasure: pseudonymize and reidentify answer;
 *   - DynamoDB ledger on moto (Glue tables registered): a privacy officer files through one instance, which
 *     withholds the subject at once; another instance withholds it once its cache is PSEUDO_ERASURE_CACHE_SECONDS old;
 *   - SQLite ledger: refused at start, 503 config-invalid naming PSEUDO_ERASURE_LEDGER, one log line, no values;
 *   - a jdbc catalog in the registry: refused at start by both functions the same way, naming PSEUDO_ERASURE_REGISTRY_FILE;
 *   - the scheduled erasure step (erasureStep.mjs) on the DynamoDB ledger and moto's EMR: submits the filed
 *     request's run and returns at once, writing the ledger's gauges as EMF; on SQLite it refuses to start the same way.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { EMRClient, ListStepsCommand, RunJobFlowCommand } from '@aws-sdk/client-emr';
import { CreateDatabaseCommand, CreateTableCommand, GlueClient } from '@aws-sdk/client-glue';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiKeyRegistry, type Role } from '../../api/auth/apiKeys.ts';
import { apiKeyDocumentsFor } from '../../api/auth/fromConfig.ts';
import { bootstrapLocal } from '../../api/bootstrap.ts';
import { ensureTable } from '../../api/erasure/dynamoLedger.ts';
import { EMF_METRIC_NAMES } from '../../api/observability/emf.ts';
import { createLogger } from '../../api/observability/logger.ts';
import { startMoto, TEST_REGION, type Moto } from '../support/moto.ts';
import { testConfig } from '../support/service.ts';

const work = mkdtempSync(join(tmpdir(), 'lambda-zip-'));
const taskRoot = join(work, 'task');
const dataDir = join(work, 'data');
const CACHE_SECONDS = 2;
let moto: Moto;
let emr: EMRClient;
let clusterId: string;
const keys: Record<'pseudonymize' | 'reidentify' | 'officer', string> = { pseudonymize: '', reidentify: '', officer: '' };
const instances: Instance[] = [];

beforeAll(async () => {
  mkdirSync(taskRoot);
  execFileSync('unzip', ['-q', resolve('dist/lambda.zip'), '-d', taskRoot]);
  // Keys and API keys from local files (the AWS providers have their own tests); the function reads them from the data folder.
  const config = testConfig(dataDir);
  await bootstrapLocal(config, createLogger('silent'));
  const registry = new ApiKeyRegistry(apiKeyDocumentsFor(config.apiKeys));
  const create = async (name: string, roles: Role[]) => (await registry.create(name, roles, undefined)).key;
  keys.pseudonymize = await create('spark', ['pseudonymize']);
  keys.reidentify = await create('steward', ['reidentify']);
  keys.officer = await create('officer', ['privacy-officer']);
  moto = await startMoto();
  // The registry a deployment adds to the zip's config folder: Glue tables (a jdbc catalog is refused on Lambda).
  const glue = new GlueClient({ region: TEST_REGION, endpoint: moto.endpoint });
  await glue.send(new CreateDatabaseCommand({ DatabaseInput: { Name: 'crm' } }));
  await glue.send(new CreateTableCommand({ DatabaseName: 'crm', TableInput: { Name: 'customers', StorageDescriptor: { Columns: [{ Name: 'email', Type: 'string' }] } } }));
  writeFileSync(join(taskRoot, 'config/erasure-registry.json'), JSON.stringify({ catalog: { type: 'glue', warehouse: 's3://lake/warehouse' }, tables: [{ name: 'glue.crm.customers', columns: { email: 'email' } }] }));
  await ensureTable({ table: 'erasure-ledger', region: TEST_REGION, endpoint: moto.endpoint });
  // For the erasure step: a run folder bucket and a cluster to add steps to.
  await new S3Client({ region: TEST_REGION, endpoint: moto.endpoint, forcePathStyle: true }).send(new CreateBucketCommand({ Bucket: 'erasure', CreateBucketConfiguration: { LocationConstraint: TEST_REGION } }));
  emr = new EMRClient({ region: TEST_REGION, endpoint: moto.endpoint });
  const cluster = await emr.send(
    new RunJobFlowCommand({ Name: 'erasure', ReleaseLabel: 'emr-7.5.0', JobFlowRole: 'EMR_EC2_DefaultRole', ServiceRole: 'EMR_DefaultRole', Instances: { KeepJobFlowAliveWhenNoSteps: true, InstanceCount: 1, MasterInstanceType: 'm5.xlarge' } }),
  );
  clusterId = cluster.JobFlowId!;
}, 120_000);

afterAll(async () => {
  await Promise.all(instances.map((instance) => instance.stop()));
  await moto.stop();
  rmSync(work, { recursive: true, force: true });
});

/** The runtime's side: import the handler module from the task root, call an export per event line, answer on fd 3. */
const DRIVER = `
import { createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
const answers = createWriteStream(null, { fd: 3 });
const [file, name] = process.env.DRIVER_HANDLER.split('.');
const module = await import(pathToFileURL(process.cwd() + '/' + file + '.mjs').href);
for await (const line of createInterface({ input: process.stdin })) {
  const { id, event } = JSON.parse(line);
  try {
    answers.write(JSON.stringify({ id, result: await module[name](event) }) + '\\n');
  } catch (error) {
    answers.write(JSON.stringify({ id, error: { name: error.name, code: error.code } }) + '\\n');
  }
}
`;

interface Instance {
  invoke(event: APIGatewayProxyEventV2): Promise<APIGatewayProxyStructuredResultV2>;
  /** Any export with any event: its result, or the error it threw (name and code). */
  invokeRaw(event: unknown): Promise<Answer>;
  /** What the function wrote to stderr, line by line. */
  errorLines(): string[];
  /** Everything it logged (stdout and stderr). */
  logs(): string;
  stop(): Promise<void>;
}

interface Answer {
  readonly result?: unknown;
  readonly error?: { readonly name: string; readonly code?: string };
}

/** One execution environment: a `node` process with the task root as cwd and the function's environment. */
function startInstance(env: Record<string, string>, handler = 'handler.handler'): Instance {
  const child: ChildProcess = spawn(process.execPath, ['--input-type=module', '-e', DRIVER], {
    cwd: taskRoot,
    env: {
      PATH: process.env.PATH,
      AWS_LAMBDA_FUNCTION_NAME: 'pseudonymization-api',
      LAMBDA_TASK_ROOT: taskRoot,
      AWS_REGION: TEST_REGION,
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
      PSEUDO_DATA_DIR: dataDir,
      PSEUDO_POLICY_FILE: resolve('test/fixtures/policies.json'),
      PSEUDO_LOG_LEVEL: 'info',
      DRIVER_HANDLER: handler,
      ...env,
    },
    stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  let stdout = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const waiting = new Map<number, (answer: Answer) => void>();
  const exited = new Promise<void>((done) => {
    child.once('exit', () => {
      done();
    });
  });
  const answers = child.stdio[3];
  if (!answers || !('on' in answers)) throw new Error('no answer pipe');
  createInterface({ input: answers as NodeJS.ReadableStream }).on('line', (line) => {
    const { id, ...answer } = JSON.parse(line) as Answer & { id: number };
    waiting.get(id)?.(answer);
    waiting.delete(id);
  });
  let next = 0;
  const invokeRaw = (event: unknown): Promise<Answer> =>
    new Promise((resolveAnswer, reject) => {
      const id = ++next;
      waiting.set(id, resolveAnswer);
      void exited.then(() => {
        reject(new Error(`the function process exited: ${stderr.slice(-2000)}`));
      });
      child.stdin!.write(`${JSON.stringify({ id, event })}\n`);
    });
  const instance: Instance = {
    invokeRaw,
    invoke: async (event) => {
      const answer = await invokeRaw(event);
      if (answer.error) throw new Error(`the API handler threw ${answer.error.name}`);
      return answer.result as APIGatewayProxyStructuredResultV2;
    },
    errorLines: () => stderr.split('\n').filter((line) => line.trim() !== ''),
    logs: () => stdout + stderr,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
  instances.push(instance);
  return instance;
}

const template = JSON.parse(readFileSync('test/fixtures/lambda/http-api-v2.json', 'utf8')) as APIGatewayProxyEventV2;

/** An HTTP API (payload 2.0) event for a JSON POST with an API key. */
function post(path: string, apiKey: string, body: unknown): APIGatewayProxyEventV2 {
  const headers: Record<string, string | undefined> = { ...template.headers, 'x-api-key': apiKey, 'content-type': 'application/json' };
  return {
    ...template,
    rawPath: `/prod${path}`,
    rawQueryString: '',
    headers,
    body: JSON.stringify(body),
    isBase64Encoded: false,
    requestContext: { ...template.requestContext, http: { ...template.requestContext.http, method: 'POST', path: `/prod${path}` } },
  };
}

async function call(instance: Instance, path: string, apiKey: string, body: unknown): Promise<{ status: number; json: unknown }> {
  const answer = await instance.invoke(post(path, apiKey, body));
  return { status: answer.statusCode ?? 0, json: JSON.parse(answer.body ?? 'null') as unknown };
}

async function pseudonymOf(instance: Instance, context: string, value: string): Promise<string> {
  const answer = await call(instance, '/v1/pseudonymize', keys.pseudonymize, { context, values: [value] });
  expect(answer.status).toBe(200);
  return (answer.json as { pseudonyms: string[] }).pseudonyms[0]!;
}

interface EmfDocument {
  readonly _aws: { readonly CloudWatchMetrics: { readonly Dimensions: string[][] }[] };
  readonly [field: string]: unknown;
}

/** The EMF documents among a function's log lines. */
const emfDocuments = (logs: string): EmfDocument[] =>
  logs
    .split('\n')
    .filter((line) => line.includes('"_aws"'))
    .map((line) => JSON.parse(line) as EmfDocument);

const reidentify = (instance: Instance, context: string, pseudonym: string) => call(instance, '/v1/reidentify', keys.reidentify, { context, pseudonyms: [pseudonym] });

describe('the built Lambda zip', () => {
  it('holds the handlers, their shared chunks and the default policy file, and no module it would load from node_modules', () => {
    const listing = execFileSync('unzip', ['-Z1', resolve('dist/lambda.zip')], { encoding: 'utf8' }).split('\n').filter(Boolean);
    expect(listing).toEqual(expect.arrayContaining(['handler.mjs', 'erasureStep.mjs', 'config/policies.json']));
    expect(listing.some((name) => name.startsWith('node_modules/'))).toBe(false);
  });

  it('without erasure configured: pseudonymizes and reidentifies', async () => {
    const instance = startInstance({});
    const pseudonym = await pseudonymOf(instance, 'email', 'plain@example.com');
    expect(await reidentify(instance, 'email', pseudonym)).toEqual({ status: 200, json: { values: ['plain@example.com'], errors: [] } });
    await instance.stop();
  });

  it('with the DynamoDB ledger: the filing instance withholds the subject at once, another instance within PSEUDO_ERASURE_CACHE_SECONDS', async () => {
    const env = {
      PSEUDO_AWS_ENDPOINT: moto.endpoint,
      PSEUDO_ERASURE_REGISTRY_FILE: 'config/erasure-registry.json',
      PSEUDO_ERASURE_LEDGER: 'dynamodb',
      PSEUDO_ERASURE_LEDGER_TABLE: 'erasure-ledger',
      PSEUDO_ERASURE_CACHE_SECONDS: String(CACHE_SECONDS),
    };
    const filing = startInstance(env);
    const other = startInstance(env);
    const pseudonym = await pseudonymOf(filing, 'email', 'jane@example.com');
    // The other instance has read the (empty) erased set before the filing: its cache is the stale one.
    expect(await reidentify(other, 'email', pseudonym)).toEqual({ status: 200, json: { values: ['jane@example.com'], errors: [] } });

    const filed = await call(filing, '/v1/erasure-requests', keys.officer, { reference: 'DSR-ZIP-1', reason: 'gdpr-art17-1a', subjects: [{ context: 'email', value: 'jane@example.com' }] });
    expect(filed.status).toBe(202);
    expect(filed.json).toMatchObject({ status: 'received', reference: 'DSR-ZIP-1' });

    const erased = { status: 200, json: { values: [null], errors: [{ index: 0, reason: 'erased' }] } };
    expect(await reidentify(filing, 'email', pseudonym)).toEqual(erased);
    expect(await call(filing, '/v1/pseudonymize', keys.pseudonymize, { context: 'email', values: ['jane@example.com'] })).toMatchObject({ status: 200, json: { pseudonyms: [null], erased: [0] } });
    // The documented bound: once its cache is older than PSEUDO_ERASURE_CACHE_SECONDS, the next request reloads it.
    await new Promise((done) => setTimeout(done, (CACHE_SECONDS + 0.5) * 1000));
    expect(await reidentify(other, 'email', pseudonym)).toEqual(erased);
    // A second start of the same zip (a new instance) sees it from its first request.
    expect(await reidentify(startInstance(env), 'email', pseudonym)).toEqual(erased);
    for (const instance of [filing, other]) expect(instance.errorLines().filter((line) => line.includes('"level":"error"'))).toEqual([]);
  });

  it('with the SQLite ledger: refuses to start, answers 503 config-invalid naming PSEUDO_ERASURE_LEDGER, and logs one line without values', async () => {
    const instance = startInstance({ PSEUDO_AWS_ENDPOINT: moto.endpoint, PSEUDO_ERASURE_REGISTRY_FILE: 'config/erasure-registry.json', PSEUDO_ERASURE_LEDGER: 'sqlite' });
    const answer = await call(instance, '/v1/pseudonymize', keys.pseudonymize, { context: 'email', values: ['jane@example.com'] });
    expect(answer.status).toBe(503);
    const problem = answer.json as { type: string; detail: string };
    expect(problem.type).toBe('urn:pseudonymization:problem:config-invalid');
    expect(problem.detail).toContain('PSEUDO_ERASURE_LEDGER');
    const lines = instance.errorLines();
    expect(lines.map((line) => JSON.parse(line) as unknown)).toContainEqual({ level: 'error', msg: 'the service could not start', errorClass: 'ConfigError', code: 'invalid-config', key: 'PSEUDO_ERASURE_LEDGER' });
    for (const line of lines) {
      expect(line).not.toContain(dataDir);
      expect(line).not.toContain('jane');
    }
    // Still refused at the next invocation (a start is tried again), never half-started on a private file.
    expect((await call(instance, '/v1/pseudonymize', keys.pseudonymize, { context: 'email', values: ['x'] })).status).toBe(503);
    await instance.stop();
  });

  it('with a jdbc catalog in the registry: both functions refuse to start, naming PSEUDO_ERASURE_REGISTRY_FILE, with no path or value logged', async () => {
    // A jdbc catalog is a SQLite file on one instance's disk: other instances would never see its tables.
    const catalogFile = join(dataDir, 'sentinel-catalog.db');
    writeFileSync(join(taskRoot, 'config/erasure-registry-jdbc.json'), JSON.stringify({ catalog: { type: 'jdbc', name: 'local', uri: catalogFile, warehouse: join(dataDir, 'warehouse') }, tables: [{ name: 'local.crm.customers', columns: { email: 'email' } }] }));
    const env = { PSEUDO_AWS_ENDPOINT: moto.endpoint, PSEUDO_ERASURE_REGISTRY_FILE: 'config/erasure-registry-jdbc.json', PSEUDO_ERASURE_LEDGER: 'dynamodb', PSEUDO_ERASURE_LEDGER_TABLE: 'erasure-ledger' };
    const refusal = { level: 'error', errorClass: 'ConfigError', code: 'invalid-config', key: 'PSEUDO_ERASURE_REGISTRY_FILE' };
    const api = startInstance(env);
    const answer = await call(api, '/v1/pseudonymize', keys.pseudonymize, { context: 'email', values: ['jane@example.com'] });
    expect(answer.status).toBe(503);
    expect(answer.json).toMatchObject({ type: 'urn:pseudonymization:problem:config-invalid', detail: expect.stringContaining('PSEUDO_ERASURE_REGISTRY_FILE') as unknown });
    expect(api.errorLines().map((line) => JSON.parse(line) as unknown)).toContainEqual({ ...refusal, msg: 'the service could not start' });
    const step = startInstance({ ...env, PSEUDO_ERASURE_RUNNER: 'emr', PSEUDO_ERASURE_EMR_CLUSTER_ID: clusterId, PSEUDO_ERASURE_EMR_JOB_URI: 's3://erasure/jobs/erasure_job.py', PSEUDO_ERASURE_EMR_WORK_URI: 's3://erasure/runs' }, 'erasureStep.erasureStepHandler');
    expect(await step.invokeRaw({})).toEqual({ error: { name: 'PlatformError', code: 'config-invalid' } });
    expect(step.errorLines().map((line) => JSON.parse(line) as unknown)).toContainEqual({ ...refusal, msg: 'the erasure step function could not start' });
    for (const instance of [api, step]) {
      expect(instance.logs()).not.toContain(catalogFile);
      expect(instance.logs()).not.toContain('jane');
    }
    await api.stop();
    await step.stop();
  });

  it('runs the scheduled erasure step: the filed request\'s EMR step is submitted and the call returns; the next call finds it running', async () => {
    const env = {
      PSEUDO_AWS_ENDPOINT: moto.endpoint,
      PSEUDO_ERASURE_REGISTRY_FILE: 'config/erasure-registry.json',
      PSEUDO_ERASURE_LEDGER: 'dynamodb',
      PSEUDO_ERASURE_LEDGER_TABLE: 'erasure-ledger-steps',
      PSEUDO_ERASURE_RUNNER: 'emr',
      PSEUDO_ERASURE_EMR_CLUSTER_ID: clusterId,
      PSEUDO_ERASURE_EMR_JOB_URI: 's3://erasure/jobs/erasure_job.py',
      PSEUDO_ERASURE_EMR_WORK_URI: 's3://erasure/runs',
    };
    await ensureTable({ table: 'erasure-ledger-steps', region: TEST_REGION, endpoint: moto.endpoint });
    const api = startInstance(env);
    const filed = await call(api, '/v1/erasure-requests', keys.officer, { reference: 'DSR-ZIP-STEP', reason: 'gdpr-art17-1a', subjects: [{ context: 'email', value: 'john@example.com' }] });
    expect(filed.status).toBe(202);
    const step = startInstance({ ...env, PSEUDO_METRICS_SERVICE: 'erasure-step-test' }, 'erasureStep.erasureStepHandler');
    const first = await step.invokeRaw({ 'detail-type': 'Scheduled Event', source: 'aws.events', detail: {} });
    const summary = first.result as { submitted: string[]; running: string[]; finished: string[] };
    expect(summary).toMatchObject({ running: [], finished: [] });
    expect(summary.submitted).toHaveLength(1);
    const steps = (await emr.send(new ListStepsCommand({ ClusterId: clusterId }))).Steps ?? [];
    expect(steps.filter((s) => s.Name === `erasure-${summary.submitted[0]}`)).toHaveLength(1);
    // Another instance, a minute later: the step is still running (moto never runs it), nothing is added.
    expect((await startInstance(env, 'erasureStep.erasureStepHandler').invokeRaw({})).result).toEqual({ submitted: [], running: summary.submitted, finished: [] });
    expect(((await emr.send(new ListStepsCommand({ ClusterId: clusterId }))).Steps ?? []).length).toBe(steps.length);
    // The ledger's gauges as EMF after the call (the age alarm's metric): a count per state, the oldest open one's age.
    const gauges = emfDocuments(step.logs());
    const byState = Object.fromEntries(gauges.filter((d) => typeof d.state === 'string').map((d): [string, unknown] => [String(d.state), d[EMF_METRIC_NAMES.erasureRequests]]));
    expect(byState).toEqual({ received: 0, running: 1, verified: 0, failed: 0 });
    const age = gauges.filter((d) => EMF_METRIC_NAMES.oldestOpenRequestAge in d);
    expect(age).toHaveLength(1);
    expect(age[0]![EMF_METRIC_NAMES.oldestOpenRequestAge]).toBeGreaterThanOrEqual(0);
    for (const document of gauges) {
      expect(document.service).toBe('erasure-step-test');
      expect(document._aws.CloudWatchMetrics[0]!.Dimensions[0]!.every((name) => name === 'service' || name === 'state')).toBe(true);
      expect(JSON.stringify(document)).not.toContain((filed.json as { id: string }).id);
    }
    expect(step.logs()).toContain('erasure run submitted');
    expect(step.logs()).not.toContain('john');
    expect(step.logs()).not.toContain(`"pseudonyms"`);
  });

  it('refuses to run the erasure step on the SQLite ledger, with the setting named in its log line', async () => {
    const step = startInstance(
      { PSEUDO_AWS_ENDPOINT: moto.endpoint, PSEUDO_ERASURE_REGISTRY_FILE: 'config/erasure-registry.json', PSEUDO_ERASURE_LEDGER: 'sqlite', PSEUDO_ERASURE_RUNNER: 'emr', PSEUDO_ERASURE_EMR_CLUSTER_ID: clusterId, PSEUDO_ERASURE_EMR_JOB_URI: 's3://erasure/jobs/erasure_job.py', PSEUDO_ERASURE_EMR_WORK_URI: 's3://erasure/runs' },
      'erasureStep.erasureStepHandler',
    );
    // What the runtime logs of the thrown error: a value-free one naming the cause (lambda/_start.ts).
    expect(await step.invokeRaw({})).toEqual({ error: { name: 'PlatformError', code: 'config-invalid' } });
    expect(step.errorLines().map((line) => JSON.parse(line) as unknown)).toContainEqual({ level: 'error', msg: 'the erasure step function could not start', errorClass: 'ConfigError', code: 'invalid-config', key: 'PSEUDO_ERASURE_LEDGER' });
  });
});
