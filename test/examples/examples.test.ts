/**
 * The README's walk-through runs on examples/: every example configuration loads with the loader that reads it
 * for real (the batch job's and the streaming job's configuration checks, the erasure table registry, the EMR
 * cluster file); the example batch job runs once end to end on local Spark against the real API; the service is
 * then started as the README restarts it with examples/erasure-registry.json (refused until `audit init` made
 * its ledger), and an erasure filed for the example subject runs to `verified` with rows deleted; and
 * `npm run local-stack` makes the stream and secret the examples name, the example streaming job starts on them,
 * records sent by the producer (`npm run produce -- --generate`) are appended, and Ctrl-C stops it cleanly.
 * So the examples cannot rot.
 *
 * Commands run in a scratch folder laid out like the repository root (examples/, config/, .venv/ and .cache/
 * linked in, data/ of its own), because the README runs them from the root with paths relative to it and this
 * test must not write into the checkout's data/.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DescribeStreamSummaryCommand, KinesisClient } from '@aws-sdk/client-kinesis';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readRegistryTables, TableRegistry } from '../../api/erasure/registry.ts';
import { PolicySet } from '../../api/policy/policy.ts';
import { readClusterConfig } from '../../infra/config.ts';
import { freePort, waitFor } from '../support/processes.ts';
import { call, startTestService, type TestService } from '../support/service.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const PYTHON = join(ROOT, '.venv', 'bin', 'python');
const SCRATCH = mkdtempSync(join(tmpdir(), 'pseudo-examples-'));
const SPARK_KEY_FILE = join(SCRATCH, 'data', 'api-keys', 'spark.key');

let service: TestService;
let sparkKey: string;

beforeAll(async () => {
  for (const linked of ['examples', '.cache', 'config', '.venv']) symlinkSync(join(ROOT, linked), join(SCRATCH, linked));
  // The service with the policy file a start from the README uses (config/policies.json).
  service = await startTestService({ PSEUDO_POLICY_FILE: 'config/policies.json' });
  // As `npm run apikeys -- create --name spark --roles pseudonymize` writes it.
  sparkKey = await service.createKey('spark', ['pseudonymize']);
  mkdirSync(join(SCRATCH, 'data', 'api-keys'), { recursive: true });
  writeFileSync(SPARK_KEY_FILE, `${sparkKey}\n`, { mode: 0o600 });
});

afterAll(async () => {
  await service.close();
  rmSync(SCRATCH, { recursive: true, force: true });
});

/** Runs a command to its end without blocking this process's event loop (the API under test serves from it). */
async function run(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const status = await new Promise<number | null>((done) => {
    child.once('exit', (code) => {
      done(code);
    });
  });
  return { status, stdout, stderr };
}

/** How a long-running command ended: its exit code, and whether it had to be killed after the grace period. */
interface Stopped {
  readonly code: number | null;
  readonly killed: boolean;
}

/** Process groups started here and not yet stopped: killed when this process exits, so none outlives the test. */
const groups = new Set<number>();
process.once('exit', () => {
  for (const pid of groups) killGroup(pid);
});

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // ESRCH: the group is gone already.
  }
}

/**
 * Starts a long-running command in the scratch root in a process group of its own (startProcess in test/support runs
 * in this process's folder and kills the command alone, not a Spark child it started). `stop` sends `signal` to the
 * command, waits up to `graceMs` for it to exit, then SIGKILLs the whole group; what is left of the group after a
 * clean exit is killed too. A busy machine or a command stuck in an erasure run can then neither hang the test nor leak.
 */
function startIn(cwd: string, command: string, args: string[], env: NodeJS.ProcessEnv): { output: () => string; exited: () => boolean; stop: (signal?: NodeJS.Signals, graceMs?: number) => Promise<Stopped> } {
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const pid = child.pid;
  if (pid !== undefined) groups.add(pid);
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((done) => {
    child.once('exit', (code) => {
      exitCode = code;
      done(code);
    });
  });
  return {
    output: () => output,
    exited: () => exitCode !== undefined,
    stop: async (signal = 'SIGTERM', graceMs = 60_000) => {
      if (exitCode === undefined) child.kill(signal);
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((done) => {
        timer = setTimeout(() => {
          done('late');
        }, graceMs);
      });
      const first = await Promise.race([exited, late]);
      clearTimeout(timer);
      if (pid !== undefined) {
        killGroup(pid);
        groups.delete(pid);
      }
      return first === 'late' ? { code: await exited, killed: true } : { code: first, killed: false };
    },
  };
}

/** The address the server logged it listens on (PSEUDO_PORT=0: the system chose a free port at bind, no window to lose it in). */
async function listeningUrl(server: { output: () => string; exited: () => boolean }): Promise<string> {
  const find = (): string | undefined => {
    for (const line of server.output().split('\n')) {
      if (!line.includes('"listening"')) continue;
      const logged = JSON.parse(line) as { msg?: string; url?: string };
      if (logged.msg === 'listening' && logged.url) return logged.url;
    }
    return undefined;
  };
  await waitFor(() => Promise.resolve(find() !== undefined || server.exited()), 'the service to listen', 60_000);
  const url = find();
  expect(url, server.output().slice(-2000)).toBeDefined();
  return url!;
}

/** Runs a Python snippet in the scratch root with the project venv; its stdout parsed as JSON. */
function python(code: string): unknown {
  const result = spawnSync(PYTHON, ['-c', code], { cwd: SCRATCH, encoding: 'utf8' });
  expect(result.stderr, 'the Python loader printed an error').toBe('');
  expect(result.status).toBe(0);
  return JSON.parse(result.stdout);
}

describe('example configurations load with the real loaders', () => {
  it('the batch job configuration passes the job configuration check', () => {
    const checked = python(`
import json
from spark_udfs.jobs.batch import parse_config
from spark_udfs.jobs.config import read_json
config = parse_config(read_json("examples/batch-job.json"))
print(json.dumps({"input": config.input_path, "columns": config.columns, "table": config.table.name, "jars": config.catalog.jars}))
`);
    expect(checked).toEqual({ input: 'examples/vehicles.csv', columns: { vin: 'vin', customer_id: 'customer_id', email: 'email' }, table: 'local.crm.customers', jars: '.cache/jars' });
  });

  it('the stream configuration passes the streaming job configuration check, on the local stack port', () => {
    const checked = python(`
import json
from spark_udfs.jobs.config import read_json
from stream_consumer.config import parse_config
config = parse_config(read_json("examples/stream.json"))
print(json.dumps({"stream": config.source.stream_name, "endpoint": config.source.endpoint_url, "key": config.api.api_key.file}))
`) as { stream: string; endpoint: string; key: string };
    expect(checked.stream).toBe('vehicles');
    expect(checked.key).toBe('data/api-keys/spark.key');
    // npm run local-stack serves moto here by default and creates this stream.
    expect(checked.endpoint).toBe('http://127.0.0.1:5000');
  });

  it('the re-keying job reads the example registry and examples/rekey-api.json: the rekey key the README creates, the inventory in data/', () => {
    const checked = python(`
import json, os
from spark_udfs.jobs.config import read_json
from spark_udfs.rekey.job import parse_api, parse_registry
_, tables, inventory = parse_registry(read_json("examples/erasure-registry.json"), "examples/erasure-registry.json")
api = parse_api(read_json("examples/rekey-api.json"))
print(json.dumps({"inventory": os.path.normpath(inventory), "contexts": list(dict.fromkeys(c for t in tables for c in t.columns.values())), "url": api.url, "key": api.api_key.file}))
`) as { inventory: string; contexts: string[]; url: string; key: string };
    // Under data/ (ignored by git), never beside the tracked registry; keys destroy resolves it the same way.
    expect(checked.inventory).toBe(join('data', 'key-inventory.json'));
    expect(readRegistryTables(join(ROOT, 'examples', 'erasure-registry.json')).keyInventory).toBe(join(ROOT, 'data', 'key-inventory.json'));
    expect(checked).toMatchObject({ url: 'http://127.0.0.1:8080', key: 'data/api-keys/rekey.key' });
    // The README creates that key with the rewrap role and every context the registry's columns hold.
    expect(readFileSync(join(ROOT, 'README.md'), 'utf8')).toContain(`npm run apikeys -- create --name rekey --roles rewrap --contexts ${checked.contexts.join(',')}`);
  });

  it('the EMR cluster file loads and its CA file is there', () => {
    const cluster = readClusterConfig(join(ROOT, 'examples', 'cluster.json'));
    expect(readFileSync(join(ROOT, cluster.ldap.caFile), 'utf8')).toContain('BEGIN CERTIFICATE');
    const rendered = spawnSync(join(ROOT, 'node_modules', '.bin', 'tsx'), ['infra/cli.ts', 'render', '--config', 'examples/cluster.json'], { cwd: ROOT, encoding: 'utf8' });
    expect(rendered.status, rendered.stderr).toBe(0);
    expect(JSON.parse(rendered.stdout)).toHaveProperty('EncryptionConfiguration.EnableAtRestEncryption', true);
  });

  it('the vehicles input is what make_vehicles.py writes (300 rows, reproducible)', () => {
    const regenerated = join(SCRATCH, 'vehicles.csv');
    const made = spawnSync(PYTHON, ['examples/make_vehicles.py', regenerated], { cwd: ROOT, encoding: 'utf8' });
    expect(made.status, made.stderr).toBe(0);
    const shipped = readFileSync(join(ROOT, 'examples', 'vehicles.csv'), 'utf8');
    expect(readFileSync(regenerated, 'utf8')).toBe(shipped);
    expect(shipped.trim().split('\n')).toHaveLength(301);
  });
});

describe('the example batch job, end to end', () => {
  it('writes local.crm.customers on local Spark, shows progress, and the example registry then loads', async () => {
    const job = await run(
      join(ROOT, '.venv', 'bin', 'pseudonymize-batch'),
      // As the README runs it; only the API's address differs (the test service listens on a free port).
      ['--config', 'examples/batch-job.json', '--master', 'local[2]', '--api-url', service.url],
      { cwd: SCRATCH, env: { ...process.env, SPARK_UDFS_PROGRESS_SECONDS: '0.5' } },
    );
    expect(job.status, job.stderr.slice(-2000)).toBe(0);
    const summary = JSON.parse(job.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    expect(summary).toMatchObject({ table: 'local.crm.customers', created: true, rows: 300, rowsSuppressed: 0 });
    // Progress while Spark works: stages and tasks on stderr as plain lines (not a terminal), never a value.
    expect(job.stderr).toMatch(/^batch: stage \d+ \d+\/\d+ tasks/m);
    const input = readFileSync(join(ROOT, 'examples', 'vehicles.csv'), 'utf8').split('\n')[1]!.split(',');
    for (const value of input.slice(1, 4)) expect(job.stderr + job.stdout).not.toContain(value);

    // The registry checks its tables against the catalog the job wrote (paths relative to the working directory).
    const before = process.cwd();
    process.chdir(SCRATCH);
    try {
      const registry = await TableRegistry.load('examples/erasure-registry.json', PolicySet.fromFile(join(ROOT, 'config', 'policies.json')));
      expect(registry.tablesFor(['email']).map((t) => t.name)).toEqual(['local.crm.customers']);
    } finally {
      process.chdir(before);
    }
  }, 660_000);
});

/** Small-machine Spark settings (as the Python suites set them): they change nothing the job writes or decides. */
const SMALL_SPARK = {
  PYSPARK_SUBMIT_ARGS: "--conf spark.sql.shuffle.partitions=2 --conf spark.default.parallelism=2 --conf spark.ui.enabled=false --conf 'spark.driver.extraJavaOptions=-XX:+UseSerialGC -XX:TieredStopAtLevel=1' pyspark-shell",
};

describe('the example erasure, as the README walks it', () => {
  it('restarts the service with examples/erasure-registry.json after audit init, and an erasure of the example subject reaches verified', async () => {
    // npm run apikeys -- create --name officer --roles privacy-officer
    const officer = await service.createKey('officer', ['privacy-officer']);
    // `PSEUDO_ERASURE_REGISTRY_FILE=examples/erasure-registry.json npm start` from the root: the built server, its
    // defaults (config/policies.json, .venv/bin/python, .cache/jars, the registry's data/iceberg) relative to it.
    // Port 0: the server binds a port the system picks and logs its address.
    const env = { ...process.env, ...SMALL_SPARK, PSEUDO_DATA_DIR: service.dataDir, PSEUDO_PORT: '0', PSEUDO_ERASURE_REGISTRY_FILE: 'examples/erasure-registry.json' };
    const refused = await run('node', [join(ROOT, 'dist', 'server.mjs')], { cwd: SCRATCH, env });
    expect(refused.status, refused.stderr).toBe(2);
    expect(refused.stderr).toContain('npm run audit -- init');
    const init = await run('node', [join(ROOT, 'dist', 'cli.mjs'), 'audit', 'init'], { cwd: SCRATCH, env });
    expect(init.status, init.stderr).toBe(0);

    const server = startIn(SCRATCH, 'node', [join(ROOT, 'dist', 'server.mjs')], { ...env, PSEUDO_ERASURE_POLL_SECONDS: '1' });
    let stopped: Stopped | undefined;
    try {
      const url = await listeningUrl(server);
      await waitFor(async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.ok === true, 'the service with erasure on', 60_000);
      const filed = await call(url, 'POST', '/v1/erasure-requests', {
        apiKey: officer,
        body: { reference: 'EXAMPLE-1', reason: 'gdpr-art17-1a', subjects: [{ context: 'email', value: 'customer006@example.com' }] },
      });
      expect(filed.status, filed.text).toBe(202);
      const id = (filed.json as { id: string }).id;
      let request: { status: string; certificate?: { tables: { table: string; rowsDeleted: string }[] } } = { status: 'received' };
      await waitFor(
        async () => {
          await new Promise((pause) => setTimeout(pause, 1000));
          request = (await call(url, 'GET', `/v1/erasure-requests/${id}`, { apiKey: officer })).json as typeof request;
          return request.status === 'verified' || request.status === 'failed';
        },
        'the example erasure to end',
        480_000,
      );
      expect(request.status, server.output().slice(-2000)).toBe('verified');
      const [table] = request.certificate!.tables;
      expect(table!.table).toBe('local.crm.customers');
      expect(BigInt(table!.rowsDeleted)).toBeGreaterThan(0n);
      expect(server.output()).not.toContain('customer006@example.com');
    } finally {
      // Stopped (killed at worst) whatever happened; asserted after, so a failure above is the one reported.
      stopped = await server.stop();
    }
    expect(stopped, server.output().slice(-2000)).toEqual({ code: 0, killed: false });
  }, 660_000);
});

/**
 * `npm run local-stack -- --port N` on a free port. The script takes no port 0, so the port is probed first; another
 * process binding it before moto does makes the script exit at once, and it is started again on another port.
 */
async function startLocalStack(): Promise<{ port: number; stack: ReturnType<typeof startIn> }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const stack = startIn(SCRATCH, PYTHON, [join(ROOT, 'scripts', 'local-stack.py'), '--port', String(port)], process.env);
    await waitFor(() => Promise.resolve(stack.output().includes('local stack ready') || stack.exited()), 'the local stack', 90_000);
    if (!stack.exited() || attempt === 3 || !/already listens on|Address already in use/.test(stack.output())) return { port, stack };
    await stack.stop();
  }
}

describe('npm run local-stack', () => {
  it('serves moto with the example stream and secret for the example streaming job, and stops on Ctrl-C', async () => {
    const { port, stack } = await startLocalStack();
    let stopped: Stopped | undefined;
    try {
      expect(stack.output(), stack.output().slice(-2000)).toContain('local stack ready');
      const endpoint = `http://127.0.0.1:${port}`;
      expect(stack.output()).toContain(`export AWS_ENDPOINT_URL=${endpoint}`);
      expect(stack.output()).toContain('AWS_ACCESS_KEY_ID=testing');
      expect(stack.output(), 'the key itself is never printed').not.toContain(sparkKey);
      const aws = { region: 'eu-west-1', endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } };
      // HTTP/1.1: moto does not speak the Kinesis client's default HTTP/2.
      const stream = await new KinesisClient({ ...aws, requestHandler: new NodeHttpHandler() }).send(new DescribeStreamSummaryCommand({ StreamName: 'vehicles' }));
      expect(stream.StreamDescriptionSummary).toMatchObject({ StreamStatus: 'ACTIVE', OpenShardCount: 2 });
      const secret = await new SecretsManagerClient(aws).send(new GetSecretValueCommand({ SecretId: 'pseudonymization/spark-key' }));
      expect(secret.SecretString).toBe(sparkKey);

      // The example EMR cluster comes up on the local stack (secrets, security configuration, cluster).
      const up = await run(join(ROOT, 'node_modules', '.bin', 'tsx'), ['infra/cli.ts', 'up', '--config', 'examples/cluster.json'], {
        cwd: ROOT,
        env: { ...process.env, AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing', AWS_REGION: 'eu-west-1', PSEUDO_AWS_ENDPOINT: endpoint, LDAP_BIND_PASSWORD: 'example-only' },
      });
      expect(up.status, up.stderr).toBe(0);
      expect(up.stdout + up.stderr).not.toContain('example-only');
      expect(JSON.parse(up.stdout)).toHaveProperty('clusterId');

      // The example streaming job reads the local stack's stream (its endpoint and the API's address as here).
      const example = JSON.parse(readFileSync(join(ROOT, 'examples', 'stream.json'), 'utf8')) as { source: Record<string, unknown>; api: Record<string, unknown> };
      const config = { ...example, source: { ...example.source, endpointUrl: endpoint }, api: { ...example.api, url: service.url } };
      writeFileSync(join(SCRATCH, 'stream.local.json'), JSON.stringify(config));
      const streaming = spawn(join(ROOT, '.venv', 'bin', 'stream-consumer'), ['--config', 'stream.local.json', '--master', 'local[1]'], {
        cwd: SCRATCH,
        // The credentials the local stack tells you to export (and the small-machine Spark settings).
        env: { ...process.env, ...SMALL_SPARK, AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing', AWS_REGION: 'eu-west-1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let streamOut = '';
      let streamErr = '';
      streaming.stdout.on('data', (chunk: Buffer) => (streamOut += chunk.toString()));
      streaming.stderr.on('data', (chunk: Buffer) => (streamErr += chunk.toString()));
      const streamExit = new Promise<number | null>((done) => {
        streaming.once('exit', (code) => {
          done(code);
        });
      });
      try {
        await waitFor(() => Promise.resolve(/"event": ?"started"/.test(streamOut) || streaming.exitCode !== null), 'the streaming job to start', 300_000);
        expect(streamOut, streamErr.slice(-2000)).toMatch(/"event": ?"started"/);
        // Before its first batch it said which start-up step it was in.
        for (const step of ['checking the stream vehicles', 'checking the API', 'starting Spark', 'creating or checking local.streaming.vehicles', 'running: a batch every 10 s']) {
          expect(streamErr).toContain(`stream-consumer: ${step}`);
        }

        // npm run produce -- --stream vehicles --generate 20 --endpoint <the local stack>: the job appends them.
        const produced = await run(join(ROOT, 'node_modules', '.bin', 'tsx'), ['stream-consumer/producer/main.ts', '--stream', 'vehicles', '--generate', '20', '--endpoint', endpoint], {
          cwd: ROOT,
          env: { ...process.env, AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing', AWS_REGION: 'eu-west-1' },
        });
        expect(produced.status, produced.stderr).toBe(0);
        expect(JSON.parse(produced.stdout.trim().split('\n').at(-1)!)).toMatchObject({ recordsSent: 20, recordsFailed: 0 });
        const batches = (): { rows: number; deadLetters: number }[] =>
          streamOut
            .split('\n')
            .filter((line) => /"event": ?"batch"/.test(line))
            .map((line) => JSON.parse(line) as { rows: number; deadLetters: number });
        await waitFor(() => Promise.resolve(batches().reduce((sum, batch) => sum + batch.rows, 0) >= 20 || streaming.exitCode !== null), 'the produced records to be appended', 240_000);
        expect(batches().reduce((sum, batch) => sum + batch.rows, 0), streamErr.slice(-2000)).toBe(20);
        expect(batches().reduce((sum, batch) => sum + batch.deadLetters, 0)).toBe(0);
      } finally {
        streaming.kill('SIGTERM');
      }
      expect(await streamExit, streamErr.slice(-2000)).toBe(0);
    } finally {
      stopped = await stack.stop('SIGINT'); // Ctrl-C
    }
    expect(stopped, stack.output().slice(-2000)).toEqual({ code: 0, killed: false });
    expect(stack.output()).toContain('local-stack: stopped');
  }, 420_000);
});
