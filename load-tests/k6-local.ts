/**
 * `npm run bench:k6-local`: the k6 scenarios (load-tests/k6/scenarios.ts: the same endpoints, batches, stages
 * and thresholds) run with autocannon, since the k6 binary cannot be installed on this machine. Starts
 * `node dist/server.mjs` on a fresh data folder (as bench:http does; the npm script builds first), or uses
 * BASE_URL with API_KEY (and REIDENTIFY_API_KEY) when set. Prints p50/p99, requests/s and errors per scenario,
 * whether each met its thresholds, and for the soak the server's RSS growth (sampled from /proc), then writes
 * load-tests/results/<date>-k6-local.txt.
 *
 * An arrival-rate stage runs as autocannon at `overallRate`; a ramp is stepped once a second. Latency is
 * autocannon's response time from the request written, so a server that falls behind the rate shows in the
 * requests/s column and in errors (timeouts), less than k6's arrival-rate latency would show it.
 *
 *   --seconds N        each constant scenario's length (default 30)
 *   --soak-minutes N   the soak's length (default 1; the target is 10)
 *   --only a,b         these scenarios only
 *   --quick            smoke run: every stage 1 s, the soak 3 s, rates / 50; latency thresholds not enforced
 *   --json FILE        also write the results as JSON
 * Exit status: 0 thresholds met, 1 a threshold missed, 2 usage (load-tests/cli.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { ApiKeyRegistry } from '../api/auth/apiKeys.ts';
import { apiKeyDocumentsFor } from '../api/auth/fromConfig.ts';
import { bootstrapLocal } from '../api/bootstrap.ts';
import { loadConfig } from '../api/config/config.ts';
import { createLogger } from '../api/observability/logger.ts';
import { freePort, waitFor } from '../test/support/processes.ts';
import { BATCH_COUNT, BATCH_SIZE, DEFAULT_OPTIONS, ENDPOINTS, batchValues, endpointAt, requestBody, scenarios, type EndpointName, type Scenario, type Stage } from './k6/scenarios.ts';
import { parseCli, positiveNumber, usageError, type Help } from './cli.ts';
import { machineHeader, table } from './machine.ts';

const HELP: Help = {
  usage: 'npm run bench:k6-local -- [--seconds N] [--soak-minutes N] [--only NAME[,NAME]] [--quick] [--json FILE]',
  measures: `The k6 scenarios (load-tests/k6/scenarios.ts) run with autocannon against node dist/server.mjs (built by the npm
script) or BASE_URL: p50/p99, requests/s, errors and threshold results per scenario, the soak's server RSS growth.
scenarios: ${scenarios().map((scenario) => scenario.name).join(', ')}`,
  duration: 'about 5 minutes with the defaults (each scenario --seconds, the soak --soak-minutes); --quick about 30 s',
  options: [
    ['--seconds N', "each constant scenario's length (default 30)"],
    ['--soak-minutes N', "the soak's length (default 1; the target is 10)"],
    ['--only NAME[,NAME]', 'these scenarios only'],
    ['--quick', 'smoke run: every stage 1 s, the soak 3 s, rates / 50; latency thresholds not enforced'],
    ['--json FILE', 'also write the results as JSON'],
  ],
  environment: [['BASE_URL, API_KEY [, REIDENTIFY_API_KEY]', 'run against that server instead of starting one']],
  failure: 'a threshold missed',
  examples: ['npm run bench:k6-local                       every scenario, 30 s each, a 1-minute soak', 'npm run bench:k6-local -- --only soak --soak-minutes 10'],
};

interface Arguments {
  readonly seconds: number;
  readonly soakMinutes: number;
  readonly only: readonly string[] | undefined;
  readonly quick: boolean;
  readonly json: string | undefined;
}

function parseArguments(argv: string[]): Arguments {
  const { values } = parseCli(
    HELP,
    {
      options: {
        seconds: { type: 'string' },
        'soak-minutes': { type: 'string' },
        only: { type: 'string' },
        quick: { type: 'boolean' },
        json: { type: 'string' },
      },
    },
    argv,
  );
  const only = values.only?.split(',').map((name) => name.trim());
  const known = new Set(scenarios().map((scenario) => scenario.name as string));
  for (const name of only ?? []) if (!known.has(name)) usageError(HELP, '--only names a scenario that does not exist');
  return {
    seconds: positiveNumber(HELP, 'seconds', values.seconds, DEFAULT_OPTIONS.seconds),
    soakMinutes: positiveNumber(HELP, 'soak-minutes', values['soak-minutes'], DEFAULT_OPTIONS.soakMinutes),
    only,
    quick: values.quick === true,
    json: values.json,
  };
}

/** The smoke shape of a scenario: the same mix and stage pattern, 1 s stages (the soak 3 s), rates / 50. */
function quickened(scenario: Scenario): Scenario {
  const rate = (target: number) => Math.max(5, Math.round(target / 50));
  return {
    ...scenario,
    startRate: rate(scenario.startRate),
    stages: scenario.watchMemory ? [{ seconds: 3, target: rate(scenario.startRate) }] : scenario.stages.map((stage) => ({ seconds: 1, target: rate(stage.target) })),
  };
}

/** Constant-rate steps: a stage at its start's rate is one step; a ramp is stepped once a second. */
function steps(startRate: number, stages: readonly Stage[]): { seconds: number; rate: number }[] {
  const out: { seconds: number; rate: number }[] = [];
  let from = startRate;
  for (const stage of stages) {
    if (stage.target === from) out.push({ seconds: stage.seconds, rate: stage.target });
    else for (let s = 1; s <= stage.seconds; s++) out.push({ seconds: 1, rate: Math.round(from + ((stage.target - from) * s) / stage.seconds) });
    from = stage.target;
  }
  return out;
}

/** Latencies in 0.1 ms buckets up to 60 s: percentiles over a 10-minute soak without keeping every sample. */
class LatencyHistogram {
  private readonly buckets = new Uint32Array(600_001);
  count = 0;

  record(ms: number): void {
    this.buckets[Math.min(this.buckets.length - 1, Math.max(0, Math.round(ms * 10)))]! += 1;
    this.count += 1;
  }

  percentile(p: number): number {
    if (this.count === 0) return Number.NaN;
    const rank = Math.ceil((p / 100) * this.count);
    let seen = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      seen += this.buckets[i]!;
      if (seen >= rank) return i / 10;
    }
    return Number.NaN;
  }
}

/** RSS of a process and its descendants (cluster workers), from /proc; undefined once it is gone. */
function rssBytes(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? 0);
    let children: number[] = [];
    try {
      children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      // No children file (older kernels): the process alone.
    }
    return kib * 1024 + children.reduce((sum, child) => sum + (rssBytes(child) ?? 0), 0);
  } catch {
    return undefined;
  }
}

interface Target {
  readonly url: string;
  readonly keys: Record<'pseudonymize' | 'reidentify', string>;
  /** The server's pid when this run started it (RSS is sampled then). */
  readonly pid: number | undefined;
  stop(): Promise<void>;
}

async function startLocalServer(): Promise<Target> {
  if (!existsSync('dist/server.mjs')) usageError(HELP, 'dist/server.mjs is missing: run npm run build (npm run bench:k6-local does)');
  const dataDir = mkdtempSync(join(tmpdir(), 'k6-local-'));
  const port = await freePort();
  const env = { PSEUDO_DATA_DIR: dataDir, PSEUDO_PORT: String(port), PSEUDO_LOG_LEVEL: 'info' };
  const config = loadConfig({ ...process.env, ...env });
  await bootstrapLocal(config, createLogger('silent'));
  // One key for both roles: the bootstrap key may only pseudonymize.
  const { key } = await new ApiKeyRegistry(apiKeyDocumentsFor(config.apiKeys)).create('k6-local', ['pseudonymize', 'reidentify'], undefined);
  // The request log goes to /dev/null: written as in production, without this process holding it.
  const child: ChildProcess = spawn('node', ['dist/server.mjs'], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      resolve();
    });
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor(async () => (await fetch(`${url}/readyz`)).ok, 'the server');
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`the server did not start: ${stderr}`, { cause: error });
  }
  return {
    url,
    keys: { pseudonymize: key, reidentify: key },
    pid: child.pid,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function remoteTarget(baseUrl: string): Target {
  const apiKey = process.env.API_KEY;
  if (!apiKey) usageError(HELP, 'BASE_URL is set: set API_KEY too');
  return { url: baseUrl.replace(/\/$/, ''), keys: { pseudonymize: apiKey, reidentify: process.env.REIDENTIFY_API_KEY ?? apiKey }, pid: undefined, stop: () => Promise.resolve() };
}

/** The bodies of each endpoint the scenario uses; reidentify's are pseudonyms of the same batches, asked for first. */
async function bodiesFor(scenario: Scenario, target: Target): Promise<Map<EndpointName, string[]>> {
  const bodies = new Map<EndpointName, string[]>();
  for (const { endpoint } of scenario.mix) {
    const list: string[] = [];
    for (let index = 0; index < BATCH_COUNT; index++) {
      let batch = batchValues(index);
      if (endpoint === 'reidentify') {
        const answer = await fetch(`${target.url}${ENDPOINTS.pseudonymize.path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-api-key': target.keys.pseudonymize },
          body: requestBody('pseudonymize', batch),
        });
        if (!answer.ok) throw new Error(`pseudonymizing the reidentify batches answered ${answer.status}`);
        batch = ((await answer.json()) as { pseudonyms: string[] }).pseudonyms;
      }
      list.push(requestBody(endpoint, batch));
    }
    bodies.set(endpoint, list);
  }
  return bodies;
}

interface ScenarioResult {
  readonly name: string;
  readonly description: string;
  readonly peakRate: number;
  readonly seconds: number;
  readonly requests: number;
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
  readonly p99Met: boolean;
  readonly errorsMet: boolean;
  /** The soak: RSS at the start and end of the measured run and its largest sample, bytes. */
  readonly rss?: { readonly startBytes: number; readonly endBytes: number; readonly maxBytes: number; readonly samples: number } | undefined;
}

async function runScenario(scenario: Scenario, target: Target, quick: boolean): Promise<ScenarioResult> {
  const bodies = await bodiesFor(scenario, target);
  const requests = Array.from({ length: BATCH_COUNT * scenario.mix.reduce((sum, entry) => sum + entry.weight, 0) }, (_, n) => {
    const endpoint = endpointAt(scenario, n);
    const list = bodies.get(endpoint)!;
    return {
      method: ENDPOINTS[endpoint].method,
      path: ENDPOINTS[endpoint].path,
      headers: { 'content-type': 'application/json', 'x-api-key': target.keys[ENDPOINTS[endpoint].key] },
      body: list[n % list.length]!,
    };
  });
  const drive = (seconds: number, rate: number, histogram?: LatencyHistogram) =>
    new Promise<autocannon.Result>((resolve, reject) => {
      // Enough connections for the rate at twice the p99 target, within what one process can drive.
      const connections = Math.min(64, Math.max(2, Math.ceil(rate / 10)));
      const instance = autocannon({ url: target.url, connections, duration: seconds, overallRate: rate, requests, timeout: 10 }, (error: Error | null, result) => {
        if (error) reject(error);
        else resolve(result);
      });
      if (histogram) {
        instance.on('response', (_client, _status, _bytes, responseTime) => {
          histogram.record(responseTime);
        });
      }
    });
  // Warm-up: JIT, connections, the cache.
  await drive(quick ? 1 : 2, scenario.startRate);

  const histogram = new LatencyHistogram();
  const samples: number[] = [];
  const sampleRss = () => {
    const bytes = target.pid === undefined ? undefined : rssBytes(target.pid);
    if (bytes !== undefined) samples.push(bytes);
  };
  let sampler: NodeJS.Timeout | undefined;
  if (scenario.watchMemory && target.pid !== undefined) {
    sampleRss();
    sampler = setInterval(sampleRss, quick ? 250 : 1000);
  }
  let ok = 0;
  let errors = 0;
  let seconds = 0;
  try {
    for (const step of steps(scenario.startRate, scenario.stages)) {
      const result = await drive(step.seconds, step.rate, histogram);
      ok += result['2xx'];
      // non2xx: any answer but 2xx; errors: no answer (includes timeouts).
      errors += result.non2xx + result.errors;
      seconds += step.seconds;
    }
  } finally {
    if (sampler) clearInterval(sampler);
  }
  if (scenario.watchMemory) sampleRss();
  const total = ok + errors;
  const p99 = histogram.percentile(99);
  return {
    name: scenario.name,
    description: scenario.description,
    peakRate: Math.max(scenario.startRate, ...scenario.stages.map((stage) => stage.target)),
    seconds,
    requests: total,
    requestsPerSecond: Math.round(total / seconds),
    p50Ms: histogram.percentile(50),
    p99Ms: p99,
    errors,
    p99Met: p99 < scenario.thresholds.p99Ms,
    errorsMet: total > 0 && errors / total <= scenario.thresholds.maxErrorRate,
    rss: samples.length > 0 ? { startBytes: samples[0]!, endBytes: samples.at(-1)!, maxBytes: Math.max(...samples), samples: samples.length } : undefined,
  };
}

const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

function render(results: readonly ScenarioResult[], args: Arguments, command: string, targetNote: string): string {
  const rows = results.map((result) => [
    result.name,
    result.peakRate.toLocaleString('en-US'),
    result.seconds,
    result.requests.toLocaleString('en-US'),
    result.requestsPerSecond.toLocaleString('en-US'),
    result.p50Ms.toFixed(1),
    result.p99Ms.toFixed(1),
    result.errors,
    `${result.p99Met ? 'yes' : 'NO'}${args.quick ? ' (not enforced)' : ''}`,
    result.errorsMet ? 'yes' : 'NO',
    result.rss ? `${mib(result.rss.startBytes)} → ${mib(result.rss.endBytes)} MiB (max ${mib(result.rss.maxBytes)}, ${result.rss.samples} samples)` : '',
  ]);
  return [
    machineHeader(command),
    `autocannon in-process (the k6 scenarios of load-tests/k6/scenarios.ts), ${BATCH_SIZE}-value batches; ${targetNote}${args.quick ? '; --quick smoke run: every stage 1 s, the soak 3 s, rates / 50 (the descriptions below are the full runs)' : ''}`,
    '',
    table(['scenario', 'peak rate/s', 's', 'requests', 'requests/s', 'p50 ms', 'p99 ms', 'errors', 'p99 < 50 ms', '0 errors', 'server RSS'], rows),
    '',
    ...results.map((result) => `${result.name}: ${result.description}`),
  ].join('\n');
}

async function main(): Promise<number> {
  const args = parseArguments(process.argv.slice(2));
  const command = ['npm run bench:k6-local', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' ');
  let chosen = scenarios({ seconds: args.seconds, soakMinutes: args.soakMinutes }).filter((scenario) => !args.only || args.only.includes(scenario.name));
  if (args.quick) chosen = chosen.map(quickened);
  const baseUrl = process.env.BASE_URL;
  const target = baseUrl ? remoteTarget(baseUrl) : await startLocalServer();
  const results: ScenarioResult[] = [];
  try {
    for (const scenario of chosen) {
      console.error(`running ${scenario.name} …`);
      results.push(await runScenario(scenario, target, args.quick));
    }
  } finally {
    await target.stop();
  }
  const report = render(results, args, command, baseUrl ? 'against BASE_URL' : 'node dist/server.mjs (1 process, logs at info to /dev/null) on the same cores');
  console.log(report);
  if (args.json) writeFileSync(args.json, JSON.stringify({ quick: args.quick, results }, null, 2));
  if (!args.quick) {
    mkdirSync('load-tests/results', { recursive: true });
    const file = `load-tests/results/${new Date().toISOString().slice(0, 10)}-k6-local.txt`;
    writeFileSync(file, report + '\n');
    console.error(`written to ${file}`);
  }
  const missed = results.filter((result) => !result.errorsMet || (!args.quick && !result.p99Met));
  return missed.length === 0 ? 0 : 1;
}

process.exitCode = await main();
