/**
 * What one warm API Lambda instance spends per million values: the built bundle (dist/lambda/handler.mjs) in
 * this process, REST API proxy events (the template's `handler.restApiHandler`) of 900 distinct VINs each (the
 * Spark client's batch), the local keyring (KMS and Secrets Manager are not on a warm request's path). Prints
 * the CPU time per event (user + system, what the handler costs whatever else runs on the machine; the wall
 * time is printed too), the billed GB-s per million values at the template's memory, and, on stdout, the log
 * lines the function writes (the request line and the EMF metrics), which CloudWatch Logs ingests: count them
 * with `wc -c` and divide by the events (warm-up included).
 *
 * Lambda gives a function CPU in proportion to its memory (one vCPU at 1,769 MB, AWS's figure); the estimate of
 * the duration at COST_MEMORY_MB below that is CPU time × 1769 / memory, for CPU-bound work on a core like this
 * one (the handler waits on nothing on a warm request). Run `npm run build` first.
 *
 *   node_modules/.bin/tsx infra/cost/lambda-cost.ts > /tmp/lambda-logs.jsonl   # COST_EVENTS=3000 COST_MEMORY_MB=1024; the summary on stderr
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';

const EVENTS = Number(process.env.COST_EVENTS ?? 3000);
const WARMUP = 200;
const BATCH = 900;
const MEMORY_MB = Number(process.env.COST_MEMORY_MB ?? 1024);
/** Lambda's memory at which a function gets one full vCPU. */
const ONE_VCPU_MB = 1769;

/** Distinct 17-character VIN-shaped values, none repeated across the run (the engine cache never answers). */
function* batches(): Generator<string[], never> {
  const alphabet = 'ABCDEFGHJKLMNPRSTUVWXYZ0123456789';
  let state = 7;
  const next = (): number => (state = (Math.imul(state, 1103515245) + 12345) >>> 0);
  let counter = 0;
  for (;;) {
    const values: string[] = [];
    for (let i = 0; i < BATCH; i++) {
      let value = (counter++).toString(36).toUpperCase().padStart(6, '0');
      while (value.length < 17) value += alphabet.charAt(next() % alphabet.length);
      values.push(value);
    }
    yield values;
  }
}

const work = mkdtempSync(join(tmpdir(), 'lambda-cost-'));
try {
  const dataEnv = { ...process.env, PSEUDO_DATA_DIR: work };
  execFileSync('node', ['dist/cli.mjs', 'keys', 'create'], { env: dataEnv, stdio: 'ignore' });
  const created = JSON.parse(execFileSync('node', ['dist/cli.mjs', 'apikeys', 'create', '--name', 'cost', '--roles', 'pseudonymize'], { env: dataEnv, encoding: 'utf8' })) as { secretFile: string };
  const apiKey = readFileSync(created.secretFile, 'utf8').trim();
  // As the template configures the function, except the keyring and API keys, which are local files here.
  Object.assign(process.env, { PSEUDO_DATA_DIR: work, PSEUDO_LOG_LEVEL: 'info', AWS_LAMBDA_FUNCTION_NAME: 'cost-probe', PSEUDO_METRICS_NAMESPACE: 'Pseudonymization', PSEUDO_METRICS_SERVICE: 'cost-pseudonymization-api' });
  const handlers = (await import(resolve('dist/lambda/handler.mjs'))) as { service(): Promise<{ close(): unknown }>; restApiHandler(event: unknown): Promise<{ statusCode: number; body: string }> };
  await handlers.service();
  const template = JSON.parse(readFileSync('test/fixtures/lambda/rest-api-v1.json', 'utf8')) as { headers: Record<string, string> };
  const source = batches();
  // Built before the clock starts: the CPU time counted is the handler's (and the runtime's around it).
  const events = Array.from({ length: WARMUP + EVENTS }, () => ({ ...template, headers: { ...template.headers, 'x-api-key': apiKey }, body: JSON.stringify({ context: 'vin', values: source.next().value }) }));
  const durations: number[] = [];
  let cpuStart = process.cpuUsage();
  for (let i = 0; i < WARMUP + EVENTS; i++) {
    const event = events[i]!;
    if (i === WARMUP) cpuStart = process.cpuUsage();
    const started = performance.now();
    const response = await handlers.restApiHandler(event);
    const elapsed = performance.now() - started;
    if (response.statusCode !== 200) throw new Error(`the handler answered ${response.statusCode}`);
    if (i >= WARMUP) durations.push(elapsed);
  }
  const cpu = process.cpuUsage(cpuStart);
  const cpuMs = (cpu.user + cpu.system) / 1000 / EVENTS;
  (await handlers.service()).close();

  durations.sort((a, b) => a - b);
  const mean = durations.reduce((sum, value) => sum + value, 0) / durations.length;
  const p99 = durations[Math.floor(durations.length * 0.99)]!;
  const cpuShare = Math.min(1, MEMORY_MB / ONE_VCPU_MB);
  const estimatedMs = cpuMs / cpuShare;
  /** Lambda bills duration rounded up to the millisecond (per invocation; the mean of rounded-up values is at most 1 ms more). */
  const billedMs = Math.ceil(estimatedMs);
  const eventsPerMillion = 1e6 / BATCH;
  const gbSecondsPerMillion = (MEMORY_MB / 1024) * (billedMs / 1000) * eventsPerMillion;
  const report = [
    `date: ${new Date().toISOString()}; ${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${cpus().length} cores; Node ${process.versions.node}`,
    `events: ${EVENTS} of ${BATCH} distinct values after ${WARMUP} warm-up events; memory ${MEMORY_MB} MB (CPU share ${cpuShare.toFixed(3)} of a vCPU)`,
    `CPU time per event: ${cpuMs.toFixed(2)} ms (${((BATCH / cpuMs) * 1000).toFixed(0)} values per CPU-second); wall time here: mean ${mean.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms`,
    `estimated on Lambda at ${MEMORY_MB} MB: ${estimatedMs.toFixed(2)} ms, billed ${billedMs} ms per event`,
    `GB-s per million values: ${gbSecondsPerMillion.toFixed(2)} (${eventsPerMillion.toFixed(1)} events of ${(MEMORY_MB / 1024).toFixed(3)} GB x ${billedMs} ms)`,
  ];
  console.error(report.join('\n'));
} finally {
  rmSync(work, { recursive: true, force: true });
}
