/**
 * `npm run console`: the compliance officers' console on embedded defaults, in one command, to look at it.
 *
 * Builds dist/ (the console bundle with it), starts a throwaway OpenLDAP directory with the test people (the
 * tests' slapd fixture, test/support/slapd.ts: a development command run from a checkout, like `npm run
 * local-stack`; nothing of it ships), an empty local Iceberg catalog with one registered table (crm.customers:
 * email, vin), and the service on 127.0.0.1 (PSEUDO_PORT, default 8080) with a temporary data folder. It prints
 * the console's address and who can sign in, and runs until Ctrl-C, then removes what it made.
 *
 * No erasure worker runs (there is no table data to erase): filed requests stay `received`. The erasure itself
 * runs with the service's worker and local Spark (README, "Right to be forgotten").
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { bootstrapLocal } from '../api/bootstrap.ts';
import { loadConfig } from '../api/config/config.ts';
import { createLogger } from '../api/observability/logger.ts';
import { startServer } from '../api/server.ts';
import { writeLocalCatalog } from '../test/support/catalog.ts';
import { PEOPLE, startSlapd } from '../test/support/slapd.ts';

const USAGE = `usage: npm run console [-- --help]

Starts the compliance officers' console on embedded defaults: a throwaway directory (sign in as olivia, officer,
or steve, steward), one registered table, the service on 127.0.0.1:PSEUDO_PORT (8080). Ctrl-C stops it and
removes what it made. Exit 2: an argument it does not take, or the port is in use.

examples:
  npm run console                     # http://127.0.0.1:8080/console/
  PSEUDO_PORT=8090 npm run console    # another port`;

function usageError(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

try {
  if (parseArgs({ options: { help: { type: 'boolean', short: 'h' } } }).values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
} catch (error) {
  // parseArgs names the option it could not read, never its value.
  usageError(error instanceof Error ? error.message : 'the arguments cannot be read');
}

execFileSync('node_modules/.bin/tsx', ['scripts/build.ts'], { stdio: 'ignore' });
const folder = mkdtempSync(join(tmpdir(), 'pseudo-console-'));
const catalog = writeLocalCatalog(folder, [{ namespace: 'crm', name: 'customers', columns: { id: 'long', email: 'string', vin: 'string' } }]);
const registryFile = join(folder, 'registry.json');
writeFileSync(registryFile, JSON.stringify({ catalog: { type: 'jdbc', name: 'local', ...catalog }, tables: [{ name: 'local.crm.customers', columns: { email: 'email', vin: 'vin' } }] }));
const directory = await startSlapd();
const config = loadConfig({
  PSEUDO_PORT: '8080',
  ...process.env,
  ...directory.env,
  PSEUDO_HOST: '127.0.0.1',
  PSEUDO_DATA_DIR: join(folder, 'data'),
  PSEUDO_ERASURE_REGISTRY_FILE: registryFile,
});
const logger = createLogger('warn');
await bootstrapLocal(config, logger);
const running = await startServer(config, { logger }).catch(async (error: unknown) => {
  await directory.stop();
  rmSync(folder, { recursive: true, force: true });
  if (typeof error === 'object' && error !== null && 'code' in error && error.code === 'EADDRINUSE') usageError(`port ${config.port} is in use: set PSEUDO_PORT to another one`);
  throw error;
});
console.log(`Console: ${running.url}/console/

Sign in as ${PEOPLE.officer.username} / ${PEOPLE.officer.password} (privacy officer: files, follows, proves)
        or ${PEOPLE.steward.username} / ${PEOPLE.steward.password} (data steward: sees no filing).
Subjects go in context email or vin; no erasure worker runs, so requests stay received. Ctrl-C stops.`);

let stopping = false;
const stop = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  await running.close();
  await directory.stop();
  rmSync(folder, { recursive: true, force: true });
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
