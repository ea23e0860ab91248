/**
 * Admin CLI, for the keyring and API keys of whichever provider the environment configures
 * (the same PSEUDO_* variables as the service):
 *
 *   keys create | rotate | list | destroy --version N
 *   apikeys create --name NAME --roles pseudonymize[,reidentify,...] [--contexts vin,email] [--out FILE]
 *   apikeys list | revoke --id ID
 *   audit list | export | verify [--head HASH]   the erasure ledger's hash-chained audit log (audit/auditCommand.ts)
 *
 * Output is JSON on stdout (audit list prints a table, audit export JSON lines). A new API key's secret
 * is written only to a 0600 file; stdout gets its id and the file's path.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ApiKeyRegistry, ROLES, type Role } from './auth/apiKeys.ts';
import { loadConfig } from './config/config.ts';
import { ConfigError, errorMessage } from './errors.ts';
import { keyringManagerFor } from './keyring/fromConfig.ts';
import { apiKeyDocumentsFor } from './auth/fromConfig.ts';
import { PrivateFile } from './storage/documents.ts';
import { runAuditCommand } from './audit/auditCommand.ts';
import type { ErasureLedger } from './erasure/ledger.ts';
import { DynamoErasureLedger } from './erasure/dynamoLedger.ts';
import { SqliteErasureLedger } from './erasure/sqliteLedger.ts';

const USAGE = `usage:
  keys create | rotate | list | destroy --version N
  apikeys create --name NAME --roles ROLE[,ROLE] [--contexts C[,C]] [--out FILE]
  apikeys list | revoke --id ID
  audit list | export | verify [--head HASH]   (audit --help: filters, examples)
roles: ${ROLES.join(', ')}`;

class UsageError extends Error {}

function list(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export async function run(argv: readonly string[]): Promise<unknown> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      version: { type: 'string' },
      name: { type: 'string' },
      roles: { type: 'string' },
      contexts: { type: 'string' },
      out: { type: 'string' },
      id: { type: 'string' },
    },
  });
  const [area, action] = positionals;
  const config = loadConfig();

  if (area === 'keys') {
    const manager = keyringManagerFor(config.keyring);
    if (action === 'create') return { keyring: manager.description, versions: await manager.create() };
    if (action === 'rotate') return { keyring: manager.description, versions: await manager.rotate() };
    if (action === 'list') return { keyring: manager.description, versions: await manager.list() };
    if (action === 'destroy') {
      const version = Number(values.version);
      if (!Number.isInteger(version) || version < 1) throw new UsageError('destroy needs --version N');
      return { keyring: manager.description, versions: await manager.destroy(version) };
    }
  }

  if (area === 'apikeys') {
    const registry = new ApiKeyRegistry(apiKeyDocumentsFor(config.apiKeys));
    if (action === 'list') return { registry: registry.description, keys: await registry.list() };
    if (action === 'revoke') {
      if (!values.id) throw new UsageError('revoke needs --id ID');
      return { registry: registry.description, revoked: await registry.revoke(values.id) };
    }
    if (action === 'create') {
      const name = values.name;
      if (!name || !/^[A-Za-z0-9_.-]{1,64}$/.test(name)) throw new UsageError('create needs --name of 1-64 A-Z a-z 0-9 _ . -');
      const roles = list(values.roles);
      const unknown = roles.filter((r) => !(ROLES as readonly string[]).includes(r));
      if (roles.length === 0 || unknown.length > 0) throw new UsageError(`--roles must list some of: ${ROLES.join(', ')}`);
      const contexts = values.contexts === undefined ? undefined : list(values.contexts);
      const out = values.out ?? join(config.dataDir, 'api-keys', `${name}.key`);
      const { key, record } = await registry.create(name, roles as Role[], contexts);
      await new PrivateFile(out).write(key + '\n');
      return { registry: registry.description, created: record, secretFile: out };
    }
  }
  throw new UsageError(`unknown command: ${positionals.join(' ') || '(none)'}`);
}

/** The ledger the environment configures, for reading: a SQLite path that holds none is a configuration error, not a new empty ledger. */
function openConfiguredLedger(): ErasureLedger {
  const { ledger } = loadConfig().erasure;
  if (ledger.store === 'dynamodb') return new DynamoErasureLedger(ledger);
  if (!existsSync(ledger.file)) throw new ConfigError(`PSEUDO_ERASURE_LEDGER_FILE: there is no ledger at ${ledger.file}`);
  return new SqliteErasureLedger(ledger.file);
}

const argv = process.argv.slice(2);
if (argv[0] === 'audit') {
  // The audit commands print tables and JSON lines and set their own exit status (0, 1 broken chain, 2 usage).
  runAuditCommand(argv.slice(1), { stdout: (text) => process.stdout.write(text), stderr: (text) => process.stderr.write(text) }, openConfiguredLedger).then(
    (status) => {
      process.exitCode = status;
    },
    (error: unknown) => {
      process.stderr.write(`${errorMessage(error)}\n`);
      process.exitCode = 1;
    },
  );
} else if (argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write(`${USAGE}\n`);
} else {
  run(argv).then(
    (result) => process.stdout.write(JSON.stringify(result, null, 2) + '\n'),
    (error: unknown) => {
      process.stderr.write(`${errorMessage(error)}\n`);
      if (error instanceof UsageError) process.stderr.write(`${USAGE}\n`);
      process.exit(error instanceof UsageError ? 2 : 1);
    },
  );
}
