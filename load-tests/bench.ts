/**
 * `npm run bench`: bench:engine then bench:http, each in its own process (as the npm script used to chain them), so
 * `npm run bench -- --help` answers here instead of running the engine benchmark first.
 */
import { spawnSync } from 'node:child_process';
import { parseCli, type Help } from './cli.ts';

const HELP: Help = {
  usage: 'npm run bench   (run npm run build first: bench:http starts dist/server.mjs)',
  measures: 'bench:engine (engine throughput on one core) then bench:http (the API over HTTP on loopback with autocannon).\nnpm run bench:engine -- --help and npm run bench:http -- --help describe each.',
  duration: 'about 1.5 minutes with the defaults',
  environment: [
    ['BENCH_SECONDS', 'seconds per measured row (defaults 3 and 10)'],
    ['BENCH_CONNECTIONS', 'concurrent connections of bench:http (default 8)'],
  ],
  examples: ['npm run build && npm run bench', 'BENCH_SECONDS=2 npm run bench'],
};
parseCli(HELP, { options: {} });

for (const script of ['load-tests/engine-bench.ts', 'load-tests/http-bench.ts']) {
  const { status } = spawnSync(process.execPath, [...process.execArgv, script], { stdio: 'inherit' });
  if (status !== 0) {
    process.exitCode = status === 2 ? 2 : 1;
    break;
  }
}
