/**
 * `npm start` (dist/server.mjs): the process around the Express transport. Loads the config,
 * bootstraps the embedded defaults, and serves on PSEUDO_HOST:PSEUDO_PORT with PSEUDO_WORKERS
 * processes (node:cluster), one of which runs the erasure worker; stops gracefully on SIGTERM/SIGINT, and reloads
 * the keyring at once on SIGHUP (every worker, when the primary gets it) instead of at the next refresh.
 * Configured by PSEUDO_* environment variables only: the one option is --help; any other argument exits 2.
 */
import cluster from 'node:cluster';
import { parseArgs } from 'node:util';
import { bootstrapLocal } from './bootstrap.ts';
import { loadConfig } from './config/config.ts';
import { keyedHashImplementation } from './engine/keyedHash.ts';
import { sivTextImplementation } from './engine/sivText.ts';
import { Ff1Batch } from './engine/ff1Batch.ts';
import { ConfigError, errorMessage } from './errors.ts';
import { createLogger } from './observability/logger.ts';
import { MaintenanceMetrics, MaintenanceSchedule, maintenanceRunnerFor } from './maintenance/schedule.ts';
import { startServer } from './server.ts';

const USAGE = `usage: npm start   (or node dist/server.mjs)

The pseudonymization API over HTTP, on PSEUDO_HOST:PSEUDO_PORT (default 127.0.0.1:8080) with PSEUDO_WORKERS
processes. It takes no arguments: every setting is a PSEUDO_* environment variable, listed with its default in
the README, section "Configuration". A first start with nothing in PSEUDO_DATA_DIR (default data) creates the
local keyring, a first API key (data/bootstrap-api-key) and, with erasure on, the erasure ledger.
SIGTERM or SIGINT drains in-flight requests and stops; SIGHUP reloads the keyring.

exit status: 0 stopped, 1 failed, 2 usage or configuration error (the message names the setting or file)

examples:
  npm start
  PSEUDO_PORT=9090 PSEUDO_LOG_LEVEL=debug npm start
  PSEUDO_ERASURE_REGISTRY_FILE=examples/erasure-registry.json npm start`;

/** --help prints the usage and exits 0; any argument the service does not take exits 2 before anything starts. */
function readArguments(argv: readonly string[]): void {
  let help: boolean | undefined;
  try {
    ({ help } = parseArgs({ args: [...argv], options: { help: { type: 'boolean', short: 'h' } }, allowPositionals: false }).values);
  } catch (error) {
    // parseArgs names the option it could not read, never its value.
    process.stderr.write(`${error instanceof Error ? error.message : 'the arguments cannot be read'}\n${USAGE}\n`);
    process.exit(2);
  }
  if (help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
}

/** Config, bootstrap, workers, signals. */
async function main(): Promise<void> {
  if (cluster.isPrimary) readArguments(process.argv.slice(2));
  const config = loadConfig();
  const logger = createLogger(config.logLevel);
  if (cluster.isPrimary) await bootstrapLocal(config, logger);
  if (cluster.isPrimary && config.workers > 1) {
    let erasureWorkerId = cluster.fork({ PSEUDO_ERASURE_WORKER_PROCESS: 'true' }).id;
    for (let i = 1; i < config.workers; i++) cluster.fork();
    let stopping = false;
    cluster.on('exit', (worker, code) => {
      if (stopping) return;
      logger.error({ workerPid: worker.process.pid, code }, 'worker exited; starting a new one');
      if (worker.id === erasureWorkerId) erasureWorkerId = cluster.fork({ PSEUDO_ERASURE_WORKER_PROCESS: 'true' }).id;
      else cluster.fork();
    });
    const stop = (): void => {
      stopping = true;
      for (const worker of Object.values(cluster.workers ?? {})) worker?.kill('SIGTERM');
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    process.on('SIGHUP', () => {
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGHUP');
    });
    // The pid to signal (kill -HUP reloads every worker's keyring through this process).
    logger.info({ workers: config.workers, host: config.host, port: config.port, pid: process.pid }, 'started workers');
    return;
  }
  // One process runs the erasure worker: the only one, or the worker the primary forked for it.
  const erasureWorker = cluster.isPrimary || process.env.PSEUDO_ERASURE_WORKER_PROCESS === 'true';
  const running = await startServer(config, { logger, erasureWorker });
  // Table maintenance runs beside the erasure worker (same process, runner and registry); it skips a table an erasure is pending for.
  const { erasure } = running.service;
  if (erasureWorker && erasure && config.erasure.registryFile && config.erasure.maintenanceIntervalHours > 0) {
    const tables = erasure.registry.tables.map((t) => t.name);
    const runner = maintenanceRunnerFor(config.erasure.runner, config.erasure.registryFile);
    new MaintenanceSchedule(tables, erasure.ledger, runner, config.erasure.maintenanceIntervalHours, logger, new MaintenanceMetrics([running.service.metrics.registry])).start();
  }
  // The pid for `kill -HUP <pid>` (README, Key rotation); a cluster worker names its primary too, whose SIGHUP reaches every worker.
  // Which engine paths serve (the native addons load here, once, not on the first request): an operator sees a build
  // without a C compiler, or a node that does not export OpenSSL, by `engine` naming the JavaScript fallbacks.
  const engine = { aesSiv: sivTextImplementation(), keyedHash: keyedHashImplementation(), ff1: Ff1Batch.implementation() };
  logger.info({ url: running.url, keyring: config.keyring.provider, ready: running.service.ready, engine, pid: process.pid, ...(cluster.isWorker ? { primaryPid: process.ppid } : {}) }, 'listening');
  const stop = (signal: string): void => {
    logger.info({ signal }, 'stopping: draining in-flight requests');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    running.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', () => {
    stop('SIGTERM');
  });
  // `npm run keys -- rotate` then `kill -HUP <pid>`: switch now, not within PSEUDO_KEYRING_REFRESH_SECONDS.
  process.on('SIGHUP', () => {
    running.service.reloadKeyring().then(
      (keyVersion) => {
        logger.info({ signal: 'SIGHUP', keyVersion }, 'keyring reloaded');
      },
      (error: unknown) => {
        logger.error({ signal: 'SIGHUP', error: errorMessage(error) }, 'keyring reload failed; keeping the keys already loaded');
      },
    );
  });
  process.once('SIGINT', () => {
    stop('SIGINT');
  });
}

main().catch((error: unknown) => {
  // Start-up errors are our own typed errors that name the setting; print the message only. A configuration or
  // state refusal (a missing keyring or ledger, a ledger behind its head record) exits 2, anything else 1.
  if (isAddressInUse(error)) {
    // Most often a server from an earlier start still runs; the fix is a setting, so it is a usage error.
    process.stderr.write('cannot start: PSEUDO_HOST:PSEUDO_PORT is already in use (is another server still running? stop it, or set PSEUDO_PORT)\n');
    process.exit(2);
  }
  process.stderr.write(`cannot start: ${errorMessage(error)}\n`);
  process.exit(error instanceof ConfigError ? 2 : 1);
});

function isAddressInUse(error: unknown): boolean {
  return error instanceof Error && 'code' in error && error.code === 'EADDRINUSE';
}
