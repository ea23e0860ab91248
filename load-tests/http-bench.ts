/**
 * `npm run bench:http`: the API over HTTP on loopback. Starts `node dist/server.mjs` (run
 * `npm run build` first; `npm run bench` does) and drives it with autocannon from this process, so
 * server and load generator share the machine's cores. Reports values/s and latency for 900- and
 * 10,000-value batches, with the cache off (every value encrypted) and warm (repeated batches).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { freePort, startProcess, waitFor } from '../test/support/processes.ts';
import { machineHeader, table, vins } from './machine.ts';
import { parseCli, type Help } from './cli.ts';

const HELP: Help = {
  usage: 'npm run bench:http   (run npm run build first; npm run bench does)',
  measures: 'The API over HTTP on loopback: starts node dist/server.mjs and drives it with autocannon from this process;\nvalues/s and latency for 900- and 10,000-value batches, cache off and warm.',
  duration: 'about 1 minute (BENCH_SECONDS per row, four rows, plus warm-up)',
  environment: [
    ['BENCH_SECONDS', 'seconds per measured row (default 10)'],
    ['BENCH_CONNECTIONS', 'concurrent connections (default 8)'],
  ],
  examples: ['npm run build && npm run bench:http', 'BENCH_SECONDS=3 npm run bench:http'],
};
parseCli(HELP, { options: {} });

const DURATION = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 8);

interface Scenario {
  batch: number;
  cache: 'off' | 'warm';
  workers: number;
}

async function runScenario({ batch, cache, workers }: Scenario): Promise<(string | number)[]> {
  const dataDir = mkdtempSync(join(tmpdir(), 'bench-'));
  const port = await freePort();
  const server = startProcess('node', ['dist/server.mjs'], {
    PSEUDO_DATA_DIR: dataDir,
    PSEUDO_PORT: String(port),
    PSEUDO_WORKERS: String(workers),
    PSEUDO_CACHE_ENTRIES: cache === 'off' ? '0' : '1000000',
    PSEUDO_LOG_LEVEL: 'info',
  });
  try {
    const url = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${url}/readyz`)).ok, 'the server');
    const apiKey = readFileSync(join(dataDir, 'bootstrap-api-key'), 'utf8').trim();
    const pool = vins(cache === 'off' ? 200_000 : batch * 4, batch);
    const bodies = Array.from({ length: Math.floor(pool.length / batch) }, (_, i) => JSON.stringify({ context: 'vin', values: pool.slice(i * batch, (i + 1) * batch) }));
    const requests = bodies.map((body) => ({ method: 'POST' as const, path: '/v1/pseudonymize', headers: { 'content-type': 'application/json', 'x-api-key': apiKey }, body }));
    // Warm-up: JIT, connections, and for the warm scenario the cache.
    await autocannon({ url, connections: CONNECTIONS, duration: 2, requests });
    const result = await autocannon({ url, connections: CONNECTIONS, duration: DURATION, requests });
    const ok = result['2xx'];
    if (result.non2xx > 0 || result.errors > 0) throw new Error(`${result.non2xx} non-2xx answers and ${result.errors} errors`);
    return [
      batch.toLocaleString('en-US'),
      cache === 'off' ? 'off (every value encrypted)' : 'warm',
      workers,
      Math.round((ok * batch) / DURATION).toLocaleString('en-US'),
      Math.round(ok / DURATION).toLocaleString('en-US'),
      result.latency.p50,
      result.latency.p99,
    ];
  } finally {
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const scenarios: Scenario[] = [];
for (const workers of [1, 2]) for (const batch of [900, 10_000]) for (const cache of ['off', 'warm'] as const) scenarios.push({ batch, cache, workers });
const rows: (string | number)[][] = [];
for (const scenario of scenarios) rows.push(await runScenario(scenario));

console.log(machineHeader('npm run bench:http'));
console.log(`autocannon in-process, ${CONNECTIONS} connections, ${DURATION} s per row after 2 s warm-up, server and load generator on the same 2 cores; logs at info to a pipe\n`);
console.log(table(['batch', 'cache', 'server processes', 'values/s', 'requests/s', 'p50 ms', 'p99 ms'], rows));
