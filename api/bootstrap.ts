/**
 * First start on the embedded defaults: create the local keyring, a first API key and, with erasure on, the erasure
 * ledger (SQLite) with its head record, so a newcomer can call the API right away. The key can only pseudonymize,
 * and its secret goes to a 0600 file, never to the log. AWS keyrings and registries are created by the admin CLI
 * instead.
 *
 * Only a first start (no state at all) creates anything. A keyring missing while other state exists (an API key
 * registry, an erasure ledger or its head record) is refused, never made again: a new keyring could not reverse a
 * single earlier pseudonym. A ledger missing together with its head record while a keyring, an API key registry or
 * a first API key exists is refused the same way when erasure is on: an empty ledger would forget every filed
 * erasure and let erased subjects be reidentified. The files cannot tell that from an installation turning erasure
 * on for the first time, so only `npm run audit -- init` (createErasureLedger) makes a new one then, knowingly.
 * A ledger missing beside its head record is refused by SqliteErasureLedger.open. Every refusal is a ConfigError,
 * so `npm start` exits 2 naming the file.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ApiKeyRegistry } from './auth/apiKeys.ts';
import type { Config } from './config/config.ts';
import { SqliteErasureLedger } from './erasure/sqliteLedger.ts';
import { ConfigError, LedgerError } from './errors.ts';
import { keyringManagerFor } from './keyring/fromConfig.ts';
import type { Logger } from './observability/logger.ts';
import { apiKeyDocumentsFor } from './auth/fromConfig.ts';
import { PrivateFile } from './storage/documents.ts';

export const BOOTSTRAP_KEY_FILE = 'bootstrap-api-key';

export async function bootstrapLocal(config: Config, logger: Logger): Promise<void> {
  // Looked at before this start creates anything: what an earlier start or the admin CLI left.
  const localKeyring = config.keyring.provider === 'local' ? config.keyring : undefined;
  const keyringFound = localKeyring !== undefined && (await keyringManagerFor(localKeyring).exists());
  const earlier = existingState(config);
  if (localKeyring && !keyringFound) {
    if (earlier.length > 0) {
      throw new ConfigError(
        `PSEUDO_KEYRING_FILE: the keyring ${localKeyring.file} is missing, but this installation already has ${earlier.join(', ')}. ` +
          'A new keyring would make every earlier pseudonym irreversible, so none is created: restore the keyring file from its backup ' +
          '(README: Backups and restoring state). To start over with new keys knowingly, run npm run keys -- create',
      );
    }
    const manager = keyringManagerFor(localKeyring);
    await manager.create();
    logger.info({ keyring: manager.description }, 'created a new keyring with key version 1 active');
  }
  if (config.apiKeys.provider === 'local') {
    const registry = new ApiKeyRegistry(apiKeyDocumentsFor(config.apiKeys));
    if (!(await registry.exists())) {
      const { key, record } = await registry.create('bootstrap', ['pseudonymize'], undefined);
      const file = join(config.dataDir, BOOTSTRAP_KEY_FILE);
      await new PrivateFile(file).write(key + '\n');
      logger.info({ apiKeyId: record.id, roles: record.roles, file }, 'created a first API key; its secret is in the file named here');
    }
  }
  const { erasure } = config;
  // Without a registry erasure is off and nothing opens the ledger; the next start with one checks it.
  if (erasure.ledger.store !== 'sqlite' || !erasure.registryFile) return;
  if (!ledgerRecorded(erasure.ledger.file, erasure.ledgerHeadFile)) {
    const others = localKeyring && keyringFound ? [`a keyring (${localKeyring.file})`, ...earlier] : earlier;
    if (others.length > 0) {
      // Not a first start: the ledger was lost with its head record, or this installation never made one.
      throw new ConfigError(
        `PSEUDO_ERASURE_LEDGER_FILE: the erasure ledger ${erasure.ledger.file} and its head record ${erasure.ledgerHeadFile} are missing, but this installation already has ${others.join(', ')}. ` +
          'A lost ledger is never replaced by an empty one (its erased subjects would be reidentified): restore both files from their backup (README: Backups and restoring state). ' +
          'If this installation never had a ledger (erasure is turned on for the first time), create an empty one knowingly with npm run audit -- init',
      );
    }
    // A true first start: the ledger is made with everything else.
  }
  // Checked here, in the one process that starts first, before workers open it.
  const { ledger, created } = SqliteErasureLedger.open(erasure.ledger.file, erasure.ledgerHeadFile);
  await ledger.close();
  if (created) logger.info({ ledger: ledger.description, headRecord: erasure.ledgerHeadFile }, 'created a new erasure ledger and its head record');
}

/**
 * `npm run audit -- init`: a new, empty SQLite ledger and its head record, made knowingly where a start refuses to
 * (an installation turning erasure on for the first time, or a lost ledger given up by the privacy officer).
 * Refused while a ledger or a head record exists: it never replaces one.
 */
export async function createErasureLedger(config: Config): Promise<{ ledger: string; headRecord: string }> {
  const { ledger: store, ledgerHeadFile } = config.erasure;
  if (store.store !== 'sqlite') {
    throw new ConfigError('PSEUDO_ERASURE_LEDGER: audit init creates a SQLite ledger; the DynamoDB ledger table is created with the infrastructure (README: Deploy to AWS)');
  }
  if (existsSync(ledgerHeadFile)) {
    throw new LedgerError(
      `the head record ${ledgerHeadFile} says a ledger exists: none is created. Restore the ledger ${store.file} from its backup; to give it up knowingly, move the head record aside first`,
      'ledger-conflict',
    );
  }
  if (nonEmpty(store.file)) throw new LedgerError(`an erasure ledger exists at ${store.file}: none is created (the service adopts it at its next start)`, 'ledger-conflict');
  const { ledger } = SqliteErasureLedger.open(store.file, ledgerHeadFile);
  await ledger.close();
  return { ledger: store.file, headRecord: ledgerHeadFile };
}

/** A ledger with content, or a head record saying one existed: either is for SqliteErasureLedger.open to check. */
function ledgerRecorded(file: string, headFile: string): boolean {
  return nonEmpty(file) || existsSync(headFile);
}

/** What an earlier start or the admin CLI left besides the keyring: local files only (an AWS registry is the admin CLI's). */
function existingState(config: Config): string[] {
  const state: string[] = [];
  if (config.apiKeys.provider === 'local' && existsSync(config.apiKeys.file)) state.push(`an API key registry (${config.apiKeys.file})`);
  if (existsSync(join(config.dataDir, BOOTSTRAP_KEY_FILE))) state.push(`a first API key (${join(config.dataDir, BOOTSTRAP_KEY_FILE)})`);
  if (existsSync(config.erasure.ledgerHeadFile)) state.push(`an erasure ledger head record (${config.erasure.ledgerHeadFile})`);
  if (config.erasure.ledger.store === 'sqlite' && nonEmpty(config.erasure.ledger.file)) state.push(`an erasure ledger (${config.erasure.ledger.file})`);
  return state;
}

function nonEmpty(file: string): boolean {
  try {
    return statSync(file).size > 0;
  } catch {
    return false;
  }
}
