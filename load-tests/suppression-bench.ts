/**
 * `npm run bench:suppression`: what withholding erased subjects costs pseudonymize and reidentify, side by side in
 * one run. Batches of 1,000 VINs of which 10 (1%) belong to subjects filed for erasure, every value encrypted
 * (engine cache off, so the lookup's share is not hidden by cache hits):
 *   (a) the server over HTTP, erasure not configured;
 *   (b) the same with erasure on: SQLite ledger, 1,000 subjects filed in the context through the API;
 *   (c) the Lambda handler (dist/lambda/handler.mjs) invoked in its own Node process with HTTP API events, one
 *       at a time as a Lambda instance takes them, erasure not configured;
 *   (d) the same with the DynamoDB ledger on moto (Glue registry, as on Lambda), 1,000 subjects filed through the
 *       handler; PSEUDO_ERASURE_CACHE_SECONDS=2, so the measured window holds several refreshes of the erased set
 *       (the ledger reads in each window are counted and printed, for the server too).
 * Each response of the erasure rows is checked: pseudonymize lists the 10 filed values in `erased`, reidentify
 * answers `erased` for them.
 *
 * The server is the Express app from the sources (startServer) in a child process, one process, no erasure worker
 * (`node dist/server.mjs` always runs one, which would start Spark jobs for the filed requests), driven by autocannon
 * from this process as in bench:http. Run `npm run build` first (for the Lambda bundle). `--quick`: a smoke run of
 * about 15 s, 100 subjects filed, no results file; otherwise about 60 s, and the table goes to
 * load-tests/results/<date>-suppression.txt too.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CreateDatabaseCommand, CreateTableCommand, GlueClient } from '@aws-sdk/client-glue';
import autocannon from 'autocannon';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { ApiKeyRegistry } from '../api/auth/apiKeys.ts';
import { apiKeyDocumentsFor } from '../api/auth/fromConfig.ts';
import { bootstrapLocal } from '../api/bootstrap.ts';
import { loadConfig } from '../api/config/config.ts';
import { ensureTable } from '../api/erasure/dynamoLedger.ts';
import { createLogger } from '../api/observability/logger.ts';
import { startServer } from '../api/server.ts';
import { writeLocalCatalog } from '../test/support/catalog.ts';
import { startMoto, TEST_REGION } from '../test/support/moto.ts';
import { freePort, startProcess, waitFor, type Started } from '../test/support/processes.ts';
import { machineHeader, table, vins } from './machine.ts';
import { parseCli, type Help } from './cli.ts';

const HELP: Help = {
  usage: 'npm run bench:suppression [-- --quick]   (run npm run build first, for the Lambda bundle)',
  measures: 'What withholding erased subjects costs pseudonymize and reidentify: 1,000-value batches with 1% filed\nsubjects, the server over HTTP with and without the SQLite ledger, the Lambda handler with and without the\nDynamoDB ledger on moto; every answer checked. Writes load-tests/results/<date>-suppression.txt (not with --quick).',
  duration: 'about 60 s; --quick about 15 s',
  options: [['--quick', 'smoke run: 1 s windows, 100 subjects filed, no results file']],
  environment: [['BENCH_SECONDS', 'seconds per measured window (default 4; 1 with --quick)']],
  examples: ['npm run build && npm run bench:suppression', 'npm run bench:suppression -- --quick'],
};
// --serve is internal: this file re-runs itself as the server child (see serve()).
const { values: args } = parseCli(HELP, { options: { quick: { type: 'boolean' }, serve: { type: 'boolean' } } });
const QUICK = args.quick === true;
const SECONDS = Number(process.env.BENCH_SECONDS ?? (QUICK ? 1 : 4));
const WARMUP_SECONDS = QUICK ? 0.5 : 1;
const CONNECTIONS = 8;
const BATCH = 1000;
const SUPPRESSED_PER_BATCH = 10;
const BATCHES = 16;
const FILED = QUICK ? 100 : 1000;
const CACHE_SECONDS = 2;
const POLICY_FILE = resolve('test/fixtures/policies.json');
const CONTEXT = 'vin';

type Operation = 'pseudonymize' | 'reidentify';
type Row = (string | number)[];

interface Workload {
  readonly dataDir: string;
  readonly keys: Record<Operation | 'officer', string>;
  /** Per batch, the values: 990 not filed, 10 filed (spread through the batch). */
  readonly valueBatches: readonly string[][];
  /** The subjects to file. */
  readonly filed: readonly string[];
  /** Per batch, the values' pseudonyms (filled from scenario (a), before anything is filed). */
  pseudonymBatches: string[][];
}

/**
 * The Express server in this file's own child process: `--serve` (internal). Counts the ledger reads of the erased
 * set and prints the count on SIGUSR2, so the parent can tell how many refreshes fell in a measured window.
 */
async function serve(): Promise<void> {
  const config = loadConfig();
  const running = await startServer(config, { logger: createLogger(config.logLevel) });
  const ledger = running.service.erasure?.ledger;
  let reads = 0;
  if (ledger) {
    const read = ledger.erasedPseudonyms.bind(ledger);
    ledger.erasedPseudonyms = (context) => {
      reads++;
      return read(context);
    };
  }
  process.on('SIGUSR2', () => {
    process.stdout.write(`\nledger-reads ${reads}\n`);
  });
  process.once('SIGTERM', () => {
    void running.close().then(() => process.exit(0));
  });
}

/** The server child's count of ledger reads so far (see `serve`). */
async function ledgerReads(server: Started): Promise<number> {
  const count = (): RegExpMatchArray[] => [...server.output().matchAll(/^ledger-reads (\d+)$/gm)];
  const before = count().length;
  server.child.kill('SIGUSR2');
  await waitFor(() => Promise.resolve(count().length > before), 'the server\'s ledger read count', 5000);
  return Number(count().at(-1)![1]);
}

function bodyOf(workload: Workload, operation: Operation, batch: number): string {
  return operation === 'pseudonymize'
    ? JSON.stringify({ context: CONTEXT, values: workload.valueBatches[batch] })
    : JSON.stringify({ context: CONTEXT, pseudonyms: workload.pseudonymBatches[batch] });
}

/** How many values of one answer were withheld as erased. */
function erasedIn(operation: Operation, body: string): number {
  if (operation === 'pseudonymize') return ((JSON.parse(body) as { erased?: number[] }).erased ?? []).length;
  return (JSON.parse(body) as { errors: { reason: string }[] }).errors.filter((error) => error.reason === 'erased').length;
}

async function post(url: string, path: string, apiKey: string, body: string): Promise<string> {
  const answer = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': apiKey }, body });
  const text = await answer.text();
  if (!answer.ok) throw new Error(`${path} answered ${answer.status}: ${text.slice(0, 300)}`);
  return text;
}

const filing = (workload: Workload): string =>
  JSON.stringify({ reference: 'BENCH-SUPPRESSION', reason: 'gdpr-art17-1a', subjects: workload.filed.map((value) => ({ context: CONTEXT, value })) });

/** Scenarios (a) and (b): the server over HTTP, driven by autocannon. */
async function serverRows(workload: Workload, erasure: 'off' | 'on'): Promise<Row[]> {
  const port = await freePort();
  const env: Record<string, string> = {
    PSEUDO_DATA_DIR: workload.dataDir,
    PSEUDO_PORT: String(port),
    PSEUDO_POLICY_FILE: POLICY_FILE,
    PSEUDO_CACHE_ENTRIES: '0',
    PSEUDO_LOG_LEVEL: 'info',
  };
  if (erasure === 'on') {
    env.PSEUDO_ERASURE_REGISTRY_FILE = jdbcRegistry(workload.dataDir);
    env.PSEUDO_ERASURE_LEDGER_FILE = join(workload.dataDir, 'bench-ledger.db');
    env.PSEUDO_ERASURE_CACHE_SECONDS = String(CACHE_SECONDS);
  }
  const server = startProcess(process.execPath, [...process.execArgv, import.meta.filename, '--serve'], env);
  try {
    const url = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${url}/readyz`)).ok, 'the server');
    if (erasure === 'off') {
      // The reidentify bodies: the mix's pseudonyms, asked for before anything is filed.
      for (let batch = 0; batch < BATCHES; batch++) {
        workload.pseudonymBatches[batch] = (JSON.parse(await post(url, '/v1/pseudonymize', workload.keys.pseudonymize, bodyOf(workload, 'pseudonymize', batch))) as { pseudonyms: string[] }).pseudonyms;
      }
    } else {
      await post(url, '/v1/erasure-requests', workload.keys.officer, filing(workload));
    }
    const rows: Row[] = [];
    for (const operation of ['pseudonymize', 'reidentify'] as const) {
      const expected = erasure === 'on' ? SUPPRESSED_PER_BATCH : 0;
      const path = `/v1/${operation}`;
      const seen = erasedIn(operation, await post(url, path, workload.keys[operation], bodyOf(workload, operation, 0)));
      if (seen !== expected) throw new Error(`server, erasure ${erasure}: ${operation} withheld ${seen} values, expected ${expected}`);
      const headers = { 'content-type': 'application/json', 'x-api-key': workload.keys[operation] };
      const requests = Array.from({ length: BATCHES }, (_, batch) => ({ method: 'POST' as const, path, headers, body: bodyOf(workload, operation, batch) }));
      await autocannon({ url, connections: CONNECTIONS, duration: WARMUP_SECONDS, requests });
      const readsBefore = await ledgerReads(server);
      const result = await autocannon({ url, connections: CONNECTIONS, duration: SECONDS, requests });
      const reads = (await ledgerReads(server)) - readsBefore;
      if (result.non2xx > 0 || result.errors > 0) throw new Error(`server, erasure ${erasure}, ${operation}: ${result.non2xx} non-2xx answers and ${result.errors} errors`);
      const ok = result['2xx'];
      rows.push([
        'server over HTTP',
        erasure === 'off' ? 'off' : `SQLite, ${FILED.toLocaleString('en-US')} filed`,
        operation,
        Math.round((ok * BATCH) / SECONDS).toLocaleString('en-US'),
        result.latency.p50,
        result.latency.p99,
        erasure === 'off' ? '–' : `${reads} in ${SECONDS} s`,
      ]);
      process.stderr.write(`server, erasure ${erasure}, ${operation}: done\n`);
    }
    return rows;
  } catch (error) {
    throw new Error(`${error instanceof Error ? error.message : String(error)}\nserver output: ${server.output().slice(-2000)}`, { cause: error });
  } finally {
    await server.stop();
  }
}

/** A jdbc catalog registry for the server (a Lambda refuses a local catalog; it gets Glue). */
function jdbcRegistry(dataDir: string): string {
  mkdirSync(join(dataDir, 'catalog'));
  const catalog = writeLocalCatalog(join(dataDir, 'catalog'), [{ namespace: 'fleet', name: 'vehicles', columns: { vin: 'string' } }]);
  const file = join(dataDir, 'registry-jdbc.json');
  writeFileSync(file, JSON.stringify({ catalog: { type: 'jdbc', name: 'local', ...catalog }, tables: [{ name: 'local.fleet.vehicles', columns: { vin: CONTEXT } }] }));
  return file;
}

const template = JSON.parse(readFileSync('test/fixtures/lambda/http-api-v2.json', 'utf8')) as APIGatewayProxyEventV2;

/** An HTTP API (payload 2.0) event for a JSON POST with an API key, as API Gateway hands it to the function. */
function event(path: string, apiKey: string, body: string): APIGatewayProxyEventV2 {
  return {
    ...template,
    rawPath: `/prod${path}`,
    headers: { ...template.headers, 'x-api-key': apiKey, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
    body,
    requestContext: { ...template.requestContext, http: { ...template.requestContext.http, method: 'POST', path: `/prod${path}` } },
  };
}

/**
 * One Lambda execution environment: imports the bundle, answers the set-up events, then per operation warms up
 * and times invocations one after another; each answer is checked outside the timed call.
 */
const DRIVER = `
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
const job = JSON.parse(readFileSync(process.env.BENCH_JOB, 'utf8'));
const handlers = await import(pathToFileURL(job.handler).href);
for (const event of job.setup) {
  const answer = await handlers.handler(event);
  if (answer.statusCode >= 300) throw new Error('set-up event answered ' + answer.statusCode + ': ' + answer.body);
}
const erasedIn = (operation, body) => operation === 'pseudonymize' ? (JSON.parse(body).erased ?? []).length : JSON.parse(body).errors.filter((e) => e.reason === 'erased').length;
const check = (operation, answer) => {
  if (answer.statusCode !== 200) throw new Error(operation + ' answered ' + answer.statusCode + ': ' + answer.body.slice(0, 300));
  const seen = erasedIn(operation, answer.body);
  if (seen !== job.expectErased) throw new Error(operation + ' withheld ' + seen + ' values, expected ' + job.expectErased);
};
// Counts the ledger reads of the erased set (the suppression reads through this object), to report the refreshes.
const ledger = (await handlers.service()).erasure?.ledger;
let reads = 0;
if (ledger) {
  const read = ledger.erasedPseudonyms.bind(ledger);
  ledger.erasedPseudonyms = (context) => {
    reads++;
    return read(context);
  };
}
const results = [];
for (const { operation, events } of job.operations) {
  let next = 0;
  const warmEnd = performance.now() + job.warmupMs;
  while (performance.now() < warmEnd) check(operation, await handlers.handler(events[next++ % events.length]));
  const samples = [];
  const readsBefore = reads;
  const end = performance.now() + job.durationMs;
  while (performance.now() < end) {
    const event = events[next++ % events.length];
    const started = performance.now();
    const answer = await handlers.handler(event);
    samples.push(performance.now() - started);
    check(operation, answer);
  }
  results.push({ operation, samples, refreshes: ledger ? reads - readsBefore : null });
}
writeFileSync(process.env.BENCH_OUT, JSON.stringify(results));
(await handlers.service()).close();
process.exit(0);
`;

interface DriverResult {
  readonly operation: Operation;
  readonly samples: number[];
  readonly refreshes: number | null;
}

/** Scenarios (c) and (d): the handler in a Node process of its own (its own module instance and environment). */
async function lambdaRows(workload: Workload, erasure: 'off' | { endpoint: string; registryFile: string; ledgerTable: string }): Promise<Row[]> {
  const jobFile = join(workload.dataDir, 'lambda-job.json');
  const outFile = join(workload.dataDir, 'lambda-out.json');
  const batches = Array.from({ length: BATCHES }, (_, batch) => batch);
  writeFileSync(
    jobFile,
    JSON.stringify({
      handler: resolve('dist/lambda/handler.mjs'),
      context: CONTEXT,
      setup: erasure === 'off' ? [] : [event('/v1/erasure-requests', workload.keys.officer, filing(workload))],
      expectErased: erasure === 'off' ? 0 : SUPPRESSED_PER_BATCH,
      warmupMs: WARMUP_SECONDS * 1000,
      durationMs: SECONDS * 1000,
      operations: (['pseudonymize', 'reidentify'] as const).map((operation) => ({ operation, events: batches.map((batch) => event(`/v1/${operation}`, workload.keys[operation], bodyOf(workload, operation, batch))) })),
    }),
  );
  const env: Record<string, string> = {
    AWS_LAMBDA_FUNCTION_NAME: 'suppression-bench',
    AWS_REGION: TEST_REGION,
    PSEUDO_DATA_DIR: workload.dataDir,
    PSEUDO_POLICY_FILE: POLICY_FILE,
    PSEUDO_CACHE_ENTRIES: '0',
    PSEUDO_LOG_LEVEL: 'info',
    BENCH_JOB: jobFile,
    BENCH_OUT: outFile,
  };
  if (erasure !== 'off') {
    Object.assign(env, {
      PSEUDO_AWS_ENDPOINT: erasure.endpoint,
      PSEUDO_ERASURE_REGISTRY_FILE: erasure.registryFile,
      PSEUDO_ERASURE_LEDGER: 'dynamodb',
      PSEUDO_ERASURE_LEDGER_TABLE: erasure.ledgerTable,
      PSEUDO_ERASURE_CACHE_SECONDS: String(CACHE_SECONDS),
    });
  }
  const instance = startProcess(process.execPath, ['--input-type=module', '-e', DRIVER], env);
  const code = await new Promise<number | null>((done) => instance.child.once('exit', done));
  await instance.stop();
  if (code !== 0) throw new Error(`the Lambda driver exited with ${code}: ${instance.output().slice(-2000)}`);
  const results = JSON.parse(readFileSync(outFile, 'utf8')) as DriverResult[];
  return results.map(({ operation, samples, refreshes }) => {
    const sorted = [...samples].sort((a, b) => a - b);
    const busySeconds = samples.reduce((a, b) => a + b, 0) / 1000;
    process.stderr.write(`Lambda, erasure ${erasure === 'off' ? 'off' : 'on'}, ${operation}: done\n`);
    return [
      'Lambda handler, one instance',
      erasure === 'off' ? 'off' : `DynamoDB on moto, ${FILED.toLocaleString('en-US')} filed`,
      operation,
      Math.round((samples.length * BATCH) / busySeconds).toLocaleString('en-US'),
      quantile(sorted, 0.5).toFixed(1),
      quantile(sorted, 0.99).toFixed(1),
      refreshes === null ? '–' : `${refreshes} in ${SECONDS} s`,
    ];
  });
}

const quantile = (sorted: readonly number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

/** Keys, API keys and the value mix, in one data folder all four scenarios share (so the pseudonyms agree). */
async function prepare(dataDir: string): Promise<Workload> {
  const config = loadConfig({ PSEUDO_DATA_DIR: dataDir, PSEUDO_POLICY_FILE: POLICY_FILE });
  await bootstrapLocal(config, createLogger('silent'));
  const registry = new ApiKeyRegistry(apiKeyDocumentsFor(config.apiKeys));
  const keys = {
    pseudonymize: (await registry.create('bench-pseudonymize', ['pseudonymize'], undefined)).key,
    reidentify: (await registry.create('bench-reidentify', ['reidentify'], undefined)).key,
    officer: (await registry.create('bench-officer', ['privacy-officer'], undefined)).key,
  };
  const filed = vins(FILED, 2);
  const filedSet = new Set(filed);
  const plain = vins(BATCHES * (BATCH - SUPPRESSED_PER_BATCH) + FILED, 1).filter((value) => !filedSet.has(value));
  const step = BATCH / SUPPRESSED_PER_BATCH;
  const valueBatches = Array.from({ length: BATCHES }, (_, batch) => {
    const values = plain.slice(batch * (BATCH - SUPPRESSED_PER_BATCH), (batch + 1) * (BATCH - SUPPRESSED_PER_BATCH));
    // Every 100th position holds a filed subject; batches take different ones while there are enough.
    for (let k = 0; k < SUPPRESSED_PER_BATCH; k++) values.splice(k * step, 0, filed[(batch * SUPPRESSED_PER_BATCH + k) % FILED]!);
    return values;
  });
  return { dataDir, keys, valueBatches, filed, pseudonymBatches: [] };
}

async function main(): Promise<void> {
  const started = Date.now();
  const dataDir = mkdtempSync(join(tmpdir(), 'suppression-bench-'));
  const moto = await startMoto();
  try {
    const workload = await prepare(dataDir);
    const rows: Row[] = [];
    rows.push(...(await serverRows(workload, 'off')));
    rows.push(...(await serverRows(workload, 'on')));
    rows.push(...(await lambdaRows(workload, 'off')));
    // What a deployment registers for Lambda: Glue tables (a local catalog is refused there), the ledger table.
    const glue = new GlueClient({ region: TEST_REGION, endpoint: moto.endpoint });
    await glue.send(new CreateDatabaseCommand({ DatabaseInput: { Name: 'fleet' } }));
    await glue.send(new CreateTableCommand({ DatabaseName: 'fleet', TableInput: { Name: 'vehicles', StorageDescriptor: { Columns: [{ Name: 'vin', Type: 'string' }] } } }));
    const registryFile = join(dataDir, 'registry-glue.json');
    writeFileSync(registryFile, JSON.stringify({ catalog: { type: 'glue', warehouse: 's3://lake/warehouse' }, tables: [{ name: 'glue.fleet.vehicles', columns: { vin: CONTEXT } }] }));
    await ensureTable({ table: 'suppression-bench', region: TEST_REGION, endpoint: moto.endpoint });
    rows.push(...(await lambdaRows(workload, { endpoint: moto.endpoint, registryFile, ledgerTable: 'suppression-bench' })));

    const command = `npm run bench:suppression${QUICK ? ' -- --quick' : ''}`;
    const output = [
      machineHeader(command),
      `workload: batches of ${BATCH.toLocaleString('en-US')} VINs, ${SUPPRESSED_PER_BATCH} of them (${(100 * SUPPRESSED_PER_BATCH) / BATCH}%) filed for erasure (${FILED.toLocaleString('en-US')} subjects filed in the context), ${BATCHES} distinct batches cycled; engine cache off (every value encrypted)`,
      `server:   startServer from the sources in a child process, one process, no erasure worker, logs at info to a pipe; autocannon in-process, ${CONNECTIONS} connections, ${SECONDS} s per row after ${WARMUP_SECONDS} s warm-up; server and load generator share the cores`,
      `Lambda:   dist/lambda/handler.mjs in a Node process of its own (AWS_LAMBDA_FUNCTION_NAME set), HTTP API events one at a time, ${SECONDS} s per row after ${WARMUP_SECONDS} s warm-up; values/s = values / time inside the handler`,
      `erasure:  PSEUDO_ERASURE_CACHE_SECONDS=${CACHE_SECONDS} (the erased set is re-read in the background once it is ${CACHE_SECONDS / 2} s old); moto is one local Python process, not DynamoDB's latency`,
      `run took ${Math.round((Date.now() - started) / 1000)} s`,
      '',
      table(['path', 'erasure (suppression lookup)', 'operation', 'values/s', 'p50 ms', 'p99 ms', 'ledger reads of the erased set'], rows),
    ].join('\n');
    console.log(output);
    if (!QUICK) {
      const file = join('load-tests', 'results', `${new Date().toISOString().slice(0, 10)}-suppression.txt`);
      writeFileSync(file, `${output}\n`);
      console.log(`\nwritten to ${file}`);
    }
  } finally {
    await moto.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

if (args.serve === true) await serve();
else await main();
