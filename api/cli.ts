/**
 * Admin CLI, for the keyring and API keys of whichever provider the environment configures
 * (the same PSEUDO_* variables as the service):
 *
 *   keys create | rotate | list | destroy --version N [--yes] [--force] (--registry FILE | --no-registry)
 *   keys import-aws-sample --secret-file FILE --contexts vin,email
 *   apikeys create --name NAME --roles pseudonymize[,reidentify,...] [--contexts vin,email] [--out FILE] [--force]
 *   apikeys list | revoke --id ID
 *   audit list | export | verify [--head HASH]   the erasure ledger's hash-chained audit log (audit/auditCommand.ts)
 *   audit init                                   a new, empty SQLite ledger where there is none (bootstrap.ts)
 *
 * Each area answers --help with its usage and examples. Output is JSON on stdout (audit list prints a table,
 * audit export JSON lines). A new API key's secret is written only to a 0600 file; stdout gets its id and the
 * file's path. Creating a key never overwrites the secret file of a key that stays active: it refuses, or with
 * --force revokes that key first.
 *
 * Exit status: 0 done, 1 the command failed, 2 usage or configuration error.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { parseArgs } from 'node:util';
import { ApiKeyRegistry, ROLES, type Role } from './auth/apiKeys.ts';
import { LogStreamAuditLog } from './audit/auditLog.ts';
import { loadConfig, type Config } from './config/config.ts';
import { readRegistryTables } from './erasure/registry.ts';
import { parseAwsSampleSecret } from './engine/legacyAwsSample.ts';
import { CONTEXT_PATTERN } from './policy/policy.ts';
import { ConfigError, errorMessage, KeyringError } from './errors.ts';
import { keyringManagerFor } from './keyring/fromConfig.ts';
import type { KeyringManager } from './keyring/manager.ts';
import { readKeyInventory, tablesHoldingVersion, type HoldingTable } from './keyring/shredding.ts';
import { createLogger } from './observability/logger.ts';
import { apiKeyDocumentsFor } from './auth/fromConfig.ts';
import { PrivateFile } from './storage/documents.ts';
import { runAuditCommand } from './audit/auditCommand.ts';
import { createErasureLedger } from './bootstrap.ts';
import type { ErasureLedger } from './erasure/ledger.ts';
import { DynamoErasureLedger } from './erasure/dynamoLedger.ts';
import { SqliteErasureLedger } from './erasure/sqliteLedger.ts';
import { destroyBlockers, SuppressionCoverage, type CoverageReport, type DestroyBlockers } from './erasure/coverage.ts';
import { readLedgerHead } from './erasure/ledgerHead.ts';
import { PseudonymEngine } from './engine/engine.ts';
import { Keyring } from './keyring/keyring.ts';
import { PolicySet } from './policy/policy.ts';

const EXIT_STATUS = 'exit status: 0 done, 1 the command failed, 2 usage or configuration error';

const KEYS_USAGE = `usage: npm run keys -- <command> [options]

The keyring of the provider the PSEUDO_* environment configures (a 0600 file under PSEUDO_DATA_DIR, or
Secrets Manager + KMS), the same settings as the service.

commands:
  create               create the keyring with its first version (refused when one exists)
  rotate               add a version and make it active; older versions still reidentify
  list                 the versions and their states (never key material)
  destroy --version N [--yes] [--force] (--registry FILE | --no-registry)
                       destroy a version that is no longer active: after destroy, every pseudonym of
                       that version is irreversible (never reidentified, never rewrapped). Asks for
                       confirmation on a terminal; elsewhere it needs --yes. Refused while a registered
                       table may still hold the version (the key inventory the re-keying job writes,
                       beside the table registry or where its "keyInventory" says), naming the tables;
                       --force destroys anyway and is audited as forced. The registry is
                       PSEUDO_ERASURE_REGISTRY_FILE, or --registry FILE; without either, refused
                       (exit 2) unless --no-registry says no table of this platform holds
                       pseudonyms (audited: forced-no-registry). Running servers and Lambda
                       instances keep the version until their keyring refresh (stdout's takesEffect).
                       A version destroyed already: exit 0, nothing done, a note says so.
                       First, every subject still suppressed in the erasure ledger gets its
                       pseudonym under the active version (AES-SIV and FPE contexts), so it stays
                       suppressed. Refused (exit 1, naming how many and which contexts) while a
                       suppression has keyed-hash tokens only under this version: they cannot be
                       re-derived without the identifier (file the subject again, or --force).
  import-aws-sample --secret-file FILE --contexts C[,C]
                       add the AWS sample service's key (its Secrets Manager secret as JSON:
                       encodedSecretKey, encodedNonceKey, nonceStrPos, nonceEndPos; api_key_value is
                       ignored) as a decrypt-only version bound to the contexts it served: reidentify
                       and rewrap then read the sample's pseudonyms of those contexts. Never active,
                       never used to pseudonymize; listed as legacy-aws-sample; destroyed like any.

${EXIT_STATUS}

examples:
  npm run keys -- list
  npm run keys -- rotate
  npm run keys -- destroy --version 1 --registry examples/erasure-registry.json
  npm run keys -- destroy --version 1 --yes --no-registry
  npm run keys -- import-aws-sample --secret-file sample-secret.json --contexts vin,email`;

const APIKEYS_USAGE = `usage: npm run apikeys -- <command> [options]

API keys for machines (Spark jobs, producers), in the registry the PSEUDO_* environment configures.

commands:
  create --name NAME --roles ROLE[,ROLE] [--contexts C[,C]] [--out FILE] [--force]
                       a new key; its secret goes only to a 0600 file (default
                       <PSEUDO_DATA_DIR>/api-keys/NAME.key), stdout shows its id and the file's path.
                       Refused when an active key has that name or the file exists: the old key's
                       secret would be lost while it stays valid. --force revokes the active keys of
                       that name (and the key the file holds) and writes the new key in its place.
  list                 every key's id, name, roles, contexts and dates (never secrets)
  revoke --id ID       revoke a key; the service stops accepting it within seconds

roles: ${ROLES.join(', ')}

${EXIT_STATUS}

examples:
  npm run apikeys -- create --name steward --roles reidentify
  npm run apikeys -- create --name spark --roles pseudonymize --contexts vin,email --out /secure/spark.key
  npm run apikeys -- create --name steward --roles reidentify --force
  npm run apikeys -- revoke --id 0b9f3c2e4a51`;

const USAGE = `usage: npm run keys -- <command> | npm run apikeys -- <command> | npm run audit -- <command>
  (or tsx api/cli.ts keys|apikeys|audit <command>)

  keys create | rotate | list | destroy --version N [--yes] [--force] (--registry FILE | --no-registry)
  keys import-aws-sample --secret-file FILE --contexts C[,C]
  apikeys create --name NAME --roles ROLE[,ROLE] [--contexts C[,C]] [--out FILE] [--force]
  apikeys list | revoke --id ID
  audit list | export | verify [--head HASH] | init

each takes --help for its options and examples, e.g. npm run apikeys -- --help

${EXIT_STATUS}`;

/** A mistake in the command line: exit 2 with the usage of the area it concerns. */
class UsageError extends Error {
  constructor(
    message: string,
    readonly usage: string = USAGE,
  ) {
    super(message);
  }
}

function list(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  version: { type: 'string' },
  name: { type: 'string' },
  roles: { type: 'string' },
  contexts: { type: 'string' },
  out: { type: 'string' },
  id: { type: 'string' },
  force: { type: 'boolean' },
  yes: { type: 'boolean', short: 'y' },
  registry: { type: 'string' },
  'no-registry': { type: 'boolean' },
  'secret-file': { type: 'string' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

/** What --help prints for these arguments: the area's usage, or the overview. */
export function helpFor(argv: readonly string[]): string {
  if (argv[0] === 'keys') return KEYS_USAGE;
  if (argv[0] === 'apikeys') return APIKEYS_USAGE;
  return USAGE;
}

export async function run(argv: readonly string[]): Promise<unknown> {
  const usage = helpFor(argv);
  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: [...argv], allowPositionals: true, options: OPTIONS }));
  } catch (error) {
    // parseArgs names the option it could not read, never its value.
    throw isParseArgsError(error) ? new UsageError(errorMessage(error), usage) : error;
  }
  const [area, action, ...rest] = positionals;
  if (area !== 'keys' && area !== 'apikeys') throw new UsageError(area === undefined ? 'a command is needed: keys, apikeys or audit' : 'unknown command', usage);
  if (action === undefined) throw new UsageError(`${area} needs a command: ${area === 'keys' ? 'create, rotate, list, destroy or import-aws-sample' : 'create, list or revoke'}`, usage);
  if (rest.length > 0) throw new UsageError('unexpected arguments after the command', usage);
  const config = loadConfig();

  if (area === 'keys') {
    const manager = keyringManagerFor(config.keyring);
    if (action === 'create') return { keyring: manager.description, versions: await manager.create() };
    if (action === 'rotate') {
      const versions = await manager.rotate();
      const active = versions.find((v) => v.state === 'active')?.version;
      // Running servers and Lambda instances hold the keyring in memory: say when they switch, and how to make it now.
      const takesEffect = `running servers and Lambda instances switch to version ${active} within ${config.keyring.refreshSeconds} s (their keyring refresh, PSEUDO_KEYRING_REFRESH_SECONDS); a server switches at once on SIGHUP (kill -HUP <pid>) or POST /v1/admin/keyring/reload (role admin)`;
      return { keyring: manager.description, versions, takesEffect };
    }
    if (action === 'list') return { keyring: manager.description, versions: await manager.list() };
    if (action === 'destroy') {
      const version = Number(values.version);
      if (!Number.isInteger(version) || version < 1) throw new UsageError('destroy needs --version N', usage);
      if (values.registry !== undefined && values['no-registry']) throw new UsageError('destroy takes --registry FILE or --no-registry, not both', usage);
      return destroyVersion(manager, version, values, config);
    }
    if (action === 'import-aws-sample') return importAwsSample(manager, values, usage, config.keyring.refreshSeconds);
    throw new UsageError('unknown keys command: create, rotate, list, destroy or import-aws-sample', usage);
  }

  const registry = new ApiKeyRegistry(apiKeyDocumentsFor(config.apiKeys));
  if (action === 'list') return { registry: registry.description, keys: await registry.list() };
  if (action === 'revoke') {
    if (!values.id) throw new UsageError('revoke needs --id ID', usage);
    return { registry: registry.description, revoked: await registry.revoke(values.id) };
  }
  if (action === 'create') return createApiKey(registry, values, join(config.dataDir, 'api-keys'), usage);
  throw new UsageError('unknown apikeys command: create, list or revoke', usage);
}

/** keys import-aws-sample: the sample's secret file read, checked and stored as a decrypt-only version (never printed). */
async function importAwsSample(manager: KeyringManager, values: Values, usage: string, refreshSeconds: number): Promise<unknown> {
  const file = values['secret-file'];
  if (!file) throw new UsageError('import-aws-sample needs --secret-file FILE (the sample secret as JSON)', usage);
  const contexts = list(values.contexts);
  if (contexts.length === 0) throw new UsageError('import-aws-sample needs --contexts C[,C]: the contexts whose pseudonyms the sample wrote', usage);
  if (!contexts.every((context) => CONTEXT_PATTERN.test(context))) throw new UsageError('--contexts must be context names (A-Z a-z 0-9 _ . : -, up to 64)', usage);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new KeyringError('the --secret-file cannot be read');
  }
  const versions = await manager.importAwsSample(parseAwsSampleSecret(text), contexts);
  const imported = versions[versions.length - 1]?.version;
  const takesEffect = `running servers and Lambda instances read version ${imported} within ${refreshSeconds} s (their keyring refresh); a server at once on SIGHUP or POST /v1/admin/keyring/reload`;
  return { keyring: manager.description, versions, takesEffect };
}

/** A key whose only secret copy would be overwritten while it stays valid: refused unless --force. */
class RefusedError extends Error {}

/** Something that destroys was not confirmed where nobody can be asked: exit 2 with one line, nothing done. */
class NotConfirmedError extends Error {}

/**
 * keys destroy: the version must exist and not be active; a registry must be named (or --no-registry said); no
 * registered table may still hold it (by the key inventory) unless --force; then a confirmation on the terminal, or
 * --yes. A forced destruction, or one without a registry, is audited as such.
 */
async function destroyVersion(manager: KeyringManager, version: number, values: Values, config: Config): Promise<unknown> {
  const entry = (await manager.list()).find((v) => v.version === version);
  if (!entry) throw new KeyringError(`key version ${version} does not exist`);
  if (entry.state === 'active') throw new KeyringError(`key version ${version} is active: rotate first, then destroy it`);
  // Destroyed already: nothing to do, and a script that runs destroy twice is not a failure (exit 0, said so).
  if (entry.state === 'destroyed') return { keyring: manager.description, versions: await manager.list(), note: `key version ${version} was destroyed already: nothing was done` };

  const registryFile = values.registry ?? config.erasure.registryFile;
  // --no-registry skips nothing a configured registry would check: PSEUDO_ERASURE_REGISTRY_FILE, when set, still applies.
  const noRegistry = values['no-registry'] === true && !registryFile;
  // Without a registry no table is checked: that is never silent (a newcomer destroyed the version a table held).
  if (!registryFile && !noRegistry) {
    throw new NotConfirmedError(
      `keys destroy needs the table registry to check which tables may still hold version ${version}: pass --registry FILE or set PSEUDO_ERASURE_REGISTRY_FILE (or --no-registry when no table of this platform holds pseudonyms, audited): nothing was destroyed`,
    );
  }
  let holding: HoldingTable[] = [];
  if (registryFile) {
    const registry = readRegistryTables(registryFile);
    // The version stopped being issued when the next one was created (rotate makes the new version active).
    const successor = (await manager.list()).filter((v) => v.version > version).sort((a, b) => a.version - b.version)[0];
    const retiredAt = successor ? new Date(successor.createdAt) : undefined;
    holding = tablesHoldingVersion(registry.tables, await readKeyInventory(registry.keyInventory, config.aws), version, retiredAt);
  }
  if (holding.length > 0 && !values.force) {
    throw new RefusedError(`key version ${version} may still be held by ${holding.map((h) => `${h.table}: ${h.reason}`).join('; ')}. Re-key those tables first (or pass --force to destroy anyway, audited)`);
  }
  const actor = userInfo().username;
  // Before anything is destroyed: erased stays erased once the versions a subject was filed under are gone.
  const suppressions = await coverSuppressions(manager, config, version, `person:${actor}`);
  const unmatched = suppressions?.blockers;
  if (unmatched && unmatched.suppressions > 0 && !values.force) {
    throw new RefusedError(
      `key version ${version} is the last readable version of ${unmatched.suppressions} suppression(s) in context ${unmatched.contexts.join(', ')}: ` +
        'their pseudonyms under other versions cannot be derived without the identifier, and once it is destroyed those subjects could be pseudonymized again. ' +
        'File them again by identifier under the active version (or pass --force to destroy anyway, audited)',
    );
  }
  const forcedPastSuppressions = unmatched !== undefined && unmatched.suppressions > 0;
  if (!values.yes) await confirm(version);
  const versions = await manager.destroy(version);
  // An audit entry on stderr (stdout is the summary), in the service's audit format; a forced one says so and names the tables.
  const audit = new LogStreamAuditLog(createLogger('info', { write: (line: string) => void process.stderr.write(line) }));
  audit.record({
    action: 'key-destroy',
    outcome: 'success',
    actor: { kind: 'person', id: actor },
    requestId: randomUUID(),
    keyVersion: version,
    // Forced past a check says `forced`; with no other override, destroying unchecked says `forced-no-registry`.
    ...(holding.length > 0 || forcedPastSuppressions ? { reason: 'forced' } : noRegistry ? { reason: 'forced-no-registry' } : {}),
    ...(holding.length > 0 ? { tables: holding.map((h) => h.table) } : {}),
    ...(forcedPastSuppressions ? { count: unmatched.suppressions, contexts: unmatched.contexts } : {}),
  });
  // Running servers and Lambda instances hold the keyring in memory: the version still works there until they reload.
  const takesEffect = `running servers and Lambda instances keep version ${version} until their keyring refresh, within ${config.keyring.refreshSeconds} s (PSEUDO_KEYRING_REFRESH_SECONDS); a server drops it at once on SIGHUP (kill -HUP <pid>) or POST /v1/admin/keyring/reload (role admin)`;
  return {
    keyring: manager.description,
    versions,
    takesEffect,
    ...(noRegistry ? { tablesChecked: 'none (--no-registry)' } : {}),
    ...(holding.length > 0 ? { forced: holding } : {}),
    ...(suppressions ? { suppressions: coverageSummary(suppressions.report) } : {}),
    ...(forcedPastSuppressions ? { forcedSuppressions: unmatched } : {}),
  };
}

/**
 * Each subject still suppressed in the configured erasure ledger gets its pseudonyms under the readable versions it
 * lacks (erasure/coverage.ts; the identifiers exist only in this process's memory meanwhile), and what would stop
 * matching once `version` is destroyed is counted. Undefined when there is no ledger (nothing was ever filed).
 */
async function coverSuppressions(manager: KeyringManager, config: Config, version: number, actor: string): Promise<{ report: CoverageReport; blockers: DestroyBlockers } | undefined> {
  const ledger = openLedgerForWriting(config);
  if (!ledger) return undefined;
  const keyring = new Keyring();
  try {
    keyring.apply(await manager.load());
    const policies = PolicySet.fromFile(config.policyFile);
    const engine = new PseudonymEngine(keyring, policies, { cacheEntries: 0, maxValueBytes: config.limits.maxValueBytes });
    const report = await new SuppressionCoverage(ledger, engine, keyring, policies).cover(actor);
    return { report, blockers: destroyBlockers(report, version) };
  } finally {
    keyring.close();
    await ledger.close();
  }
}

/** What stdout shows of a coverage pass: counts only. */
function coverageSummary(report: CoverageReport): { keyVersion: number; requests: number; subjects: number; pseudonymsAdded: number } {
  return { keyVersion: report.keyVersion, requests: report.requests, subjects: report.subjects, pseudonymsAdded: report.pseudonyms };
}

/**
 * The configured ledger, to add pseudonyms to: SQLite through its head record (which the additions keep current), or
 * DynamoDB. None when no SQLite ledger was ever created here (no file, no head record): then nothing is suppressed.
 */
function openLedgerForWriting(config: Config): ErasureLedger | undefined {
  const { ledger, ledgerHeadFile } = config.erasure;
  if (ledger.store === 'dynamodb') return new DynamoErasureLedger(ledger);
  if (!existsSync(ledger.file) && readLedgerHead(ledgerHeadFile) === undefined) return undefined;
  return SqliteErasureLedger.open(ledger.file, ledgerHeadFile).ledger;
}

/** On a terminal: the operator types the version number. Anywhere else: refused (exit 2) unless --yes was given. */
async function confirm(version: number): Promise<void> {
  if (!process.stdin.isTTY) throw new NotConfirmedError('keys destroy needs --yes when not run on a terminal: nothing was destroyed');
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await prompt.question(`Destroy key version ${version}? Every pseudonym of that version becomes irreversible. Type ${version} to confirm: `);
    if (answer.trim() !== String(version)) throw new RefusedError('not confirmed: nothing was destroyed');
  } finally {
    prompt.close();
  }
}

async function createApiKey(registry: ApiKeyRegistry, values: Values, keyFolder: string, usage: string): Promise<unknown> {
  const name = values.name;
  if (!name || !/^[A-Za-z0-9_.-]{1,64}$/.test(name)) throw new UsageError('create needs --name of 1-64 A-Z a-z 0-9 _ . -', usage);
  const roles = list(values.roles);
  const unknown = roles.filter((r) => !(ROLES as readonly string[]).includes(r));
  if (roles.length === 0 || unknown.length > 0) throw new UsageError(`--roles must list some of: ${ROLES.join(', ')}`, usage);
  const contexts = values.contexts === undefined ? undefined : list(values.contexts);
  const out = values.out ?? join(keyFolder, `${name}.key`);

  const active = (await registry.list()).filter((key) => key.revokedAt === null);
  const sameName = active.filter((key) => key.name === name).map((key) => key.id);
  const fileExists = existsSync(out);
  // The key the file holds now, if it is one of ours and still active: overwriting the file loses its only copy.
  const fileKeyId = fileExists ? keyIdIn(out) : undefined;
  const fileKey = active.find((key) => key.id === fileKeyId)?.id;
  if (!values.force && (sameName.length > 0 || fileExists)) {
    throw new RefusedError(
      sameName.length > 0
        ? `an active API key is named ${name} (id ${sameName.join(', ')}): revoke it first (npm run apikeys -- revoke --id ${sameName[0]!}), choose another --name, or pass --force to revoke it and write the new key in its place`
        : `${out} exists${fileKey ? ` and holds the active key ${fileKey}` : ''}: choose another --out, or pass --force to ${fileKey ? 'revoke that key and ' : ''}overwrite the file`,
    );
  }
  // Revoked before the new key exists: a failure here leaves no valid key whose secret is gone.
  const toRevoke = [...new Set([...sameName, ...(fileKey ? [fileKey] : [])])];
  for (const id of toRevoke) await registry.revoke(id);
  const { key, record } = await registry.create(name, roles as Role[], contexts);
  await new PrivateFile(out).write(key + '\n');
  return { registry: registry.description, created: record, secretFile: out, ...(toRevoke.length > 0 ? { revoked: toRevoke } : {}) };
}

/** The id of the API key a secret file holds (`pk_<id>_…`), without keeping the secret. */
function keyIdIn(path: string): string | undefined {
  try {
    return /^pk_([0-9a-f]{12})_/.exec(readFileSync(path, 'utf8').trim())?.[1];
  } catch {
    return undefined;
  }
}

function isParseArgsError(error: unknown): boolean {
  return error instanceof TypeError && 'code' in error && typeof error.code === 'string' && error.code.startsWith('ERR_PARSE_ARGS_');
}

/** The ledger the environment configures, for reading: a SQLite path that holds none is a configuration error, not a new empty ledger. */
function openConfiguredLedger(): ErasureLedger {
  const { ledger, ledgerHeadFile } = loadConfig().erasure;
  if (ledger.store === 'dynamodb') return new DynamoErasureLedger(ledger);
  // Through the head record: a missing, emptied or older ledger is refused, never read as an empty valid chain.
  return SqliteErasureLedger.open(ledger.file, ledgerHeadFile, { forReading: true }).ledger;
}

const argv = process.argv.slice(2);
if (argv[0] === 'audit') {
  // The audit commands print tables and JSON lines and set their own exit status (0, 1 broken chain, 2 usage).
  const io = { stdout: (text: string) => process.stdout.write(text), stderr: (text: string) => process.stderr.write(text) };
  runAuditCommand(argv.slice(1), io, openConfiguredLedger, () => createErasureLedger(loadConfig())).then(
    (status) => {
      process.exitCode = status;
    },
    (error: unknown) => {
      process.stderr.write(`${errorMessage(error)}\n`);
      process.exitCode = 1;
    },
  );
} else if (argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write(`${helpFor(argv)}\n`);
} else {
  run(argv).then(
    (result) => process.stdout.write(JSON.stringify(result, null, 2) + '\n'),
    (error: unknown) => {
      process.stderr.write(`${errorMessage(error)}\n`);
      if (error instanceof UsageError) process.stderr.write(`${error.usage}\n`);
      process.exitCode = error instanceof UsageError || error instanceof ConfigError || error instanceof NotConfirmedError ? 2 : 1;
    },
  );
}
