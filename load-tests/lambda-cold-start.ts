/**
 * `npm run bench:lambda`: the deployable Lambda bundle's size and its cold-start cost, measured in
 * fresh Node processes: import the bundle, build the service (config, policies, keyring load),
 * answer a first HTTP API (payload 2.0) event with 900 values. Once with the local keyring, once with
 * the AWS keyring on a local moto server (Secrets Manager read + KMS Decrypt over loopback).
 * Run `npm run build` first (`npm run bench` does).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { startMoto } from '../test/support/moto.ts';
import { machineHeader, table, vins } from './machine.ts';
import { parseCli, type Help } from './cli.ts';

const run = promisify(execFile);
const HELP: Help = {
  usage: 'npm run bench:lambda   (run npm run build first; npm run bench does)',
  measures: "The Lambda bundle's size and cold-start cost in fresh Node processes (import, build the service, answer a\nfirst 900-value event), with the local keyring and with the AWS keyring on a local moto server.",
  duration: 'about 30 s to 1 minute (BENCH_RUNS cold starts per keyring, plus starting moto)',
  environment: [['BENCH_RUNS', 'cold starts per keyring (default 7)']],
  examples: ['npm run build && npm run bench:lambda', 'BENCH_RUNS=3 npm run bench:lambda'],
};
parseCli(HELP, { options: {} });

const RUNS = Number(process.env.BENCH_RUNS ?? 7);

const probe = `
const t0 = performance.now();
const handlers = await import(${JSON.stringify(resolve('dist/lambda/handler.mjs'))});
const t1 = performance.now();
await handlers.service();
const t2 = performance.now();
const event = JSON.parse(process.env.PROBE_EVENT);
const response = await handlers.handler(event);
const t3 = performance.now();
if (response.statusCode !== 200) throw new Error('first invocation answered ' + response.statusCode + ' ' + response.body);
console.log(JSON.stringify({ importMs: t1 - t0, startMs: t2 - t1, firstMs: t3 - t2 }));
(await handlers.service()).close();
`;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function measure(env: Record<string, string>, apiKey: string): Promise<(string | number)[]> {
  const template = JSON.parse(readFileSync('test/fixtures/lambda/http-api-v2.json', 'utf8')) as Record<string, unknown> & { headers: Record<string, string> };
  const event = { ...template, headers: { ...template.headers, 'x-api-key': apiKey }, body: JSON.stringify({ context: 'vin', values: vins(900) }) };
  const samples: { importMs: number; startMs: number; firstMs: number }[] = [];
  for (let i = 0; i < RUNS; i++) {
    const { stdout } = await run('node', ['--input-type=module', '-e', probe], { env: { ...process.env, ...env, PSEUDO_LOG_LEVEL: 'warn', PROBE_EVENT: JSON.stringify(event) } });
    samples.push(JSON.parse(stdout.trim().split('\n').at(-1)!) as (typeof samples)[number]);
  }
  const f = (n: number) => n.toFixed(0);
  return [f(median(samples.map((s) => s.importMs))), f(median(samples.map((s) => s.startMs))), f(median(samples.map((s) => s.firstMs))), f(median(samples.map((s) => s.importMs + s.startMs + s.firstMs)))];
}

async function cli(env: Record<string, string>, ...args: string[]): Promise<string> {
  return (await run('node', ['dist/cli.mjs', ...args], { env: { ...process.env, ...env } })).stdout;
}

const work = mkdtempSync(join(tmpdir(), 'lambda-bench-'));
const moto = await startMoto();
try {
  const local = { PSEUDO_DATA_DIR: join(work, 'local') };
  await cli(local, 'keys', 'create');
  const localKey = JSON.parse(await cli(local, 'apikeys', 'create', '--name', 'bench', '--roles', 'pseudonymize')) as { secretFile: string };
  const aws = {
    ...moto.env,
    PSEUDO_DATA_DIR: join(work, 'aws'),
    PSEUDO_KEYRING: 'aws',
    PSEUDO_KEYRING_SECRET_ID: 'bench/keyring',
    PSEUDO_KMS_KEY_ID: await moto.createKmsKey(),
    PSEUDO_API_KEYS: 'aws',
    PSEUDO_API_KEYS_SECRET_ID: 'bench/api-keys',
  };
  await cli(aws, 'keys', 'create');
  const awsKey = JSON.parse(await cli(aws, 'apikeys', 'create', '--name', 'bench', '--roles', 'pseudonymize')) as { secretFile: string };
  const rows = [
    ['local keyring file', ...(await measure(local, readFileSync(localKey.secretFile, 'utf8').trim()))],
    ['Secrets Manager + KMS (moto on loopback)', ...(await measure(aws, readFileSync(awsKey.secretFile, 'utf8').trim()))],
  ];
  console.log(machineHeader('npm run bench:lambda'));
  console.log(`bundle: dist/lambda/handler.mjs ${(statSync('dist/lambda/handler.mjs').size / 1024).toFixed(0)} KiB, dist/lambda.zip ${(statSync('dist/lambda.zip').size / 1024).toFixed(0)} KiB`);
  console.log(`median of ${RUNS} fresh Node processes; the first invocation carries 900 values\n`);
  console.log(table(['keyring', 'import ms', 'service start ms', 'first invocation ms', 'total init + first ms'], rows));
} finally {
  await moto.stop();
  rmSync(work, { recursive: true, force: true });
}
