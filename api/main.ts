/**
 * `npm start` (dist/server.mjs): the process around the Express transport. Loads the config,
 * bootstraps the embedded defaults, and serves on PSEUDO_HOST:PSEUDO_PORT with PSEUDO_WORKERS
 * processes (node:cluster), one of which runs the erasure worker; stops gracefully on SIGTERM/SIGINT, and reloads
 * the keyring at once on SIGHUP (every worker, when the primary gets it) instead of at the next refresh.
 */
import cluster from 'node:cluster';
import { bootstrapLocal } from './bootstrap.ts';
import { loadConfig } from './config/config.ts';
import { ConfigError, errorMessage } from './errors.ts';
import { createLogger } from './observability/logger.ts';
import { MaintenanceMetrics, MaintenanceSchedule, maintenanceRunnerFor } from './maintenance/schedule.ts';
import { startServer } from './server.ts';

/** Config, bootstrap, workers, signals. */
async function main(): Promise<void> {
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
    logger.info({ workers: config.workers, host: config.host, port: config.port }, 'started workers');
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
  logger.info({ url: running.url, keyring: config.keyring.provider, ready: running.service.ready }, 'listening');
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
