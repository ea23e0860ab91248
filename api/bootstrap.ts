/**
 * First start on the embedded defaults: create the local keyring, a first API key and the erasure ledger, so a
 * newcomer can call the API right away. The key can only pseudonymize, and its secret goes to a 0600 file,
 * never to the log. AWS keyrings and registries are created by the admin CLI instead.
 *
 * Only a first start creates anything. A keyring missing while other state exists (an API key registry, an
 * erasure ledger or its head record) is refused, never made again: a new keyring could not reverse a single
 * earlier pseudonym. The erasure ledger is refused the same way when its head record says one existed
 * (SqliteErasureLedger.open). Both refusals are ConfigErrors, so `npm start` exits 2 naming the file.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ApiKeyRegistry } from './auth/apiKeys.ts';
import type { Config } from './config/config.ts';
import { SqliteErasureLedger } from './erasure/sqliteLedger.ts';
import { ConfigError } from './errors.ts';
import { keyringManagerFor } from './keyring/fromConfig.ts';
import type { Logger } from './observability/logger.ts';
import { apiKeyDocumentsFor } from './auth/fromConfig.ts';
import { PrivateFile } from './storage/documents.ts';

export const BOOTSTRAP_KEY_FILE = 'bootstrap-api-key';

export async function bootstrapLocal(config: Config, logger: Logger): Promise<void> {
  if (config.keyring.provider === 'local') {
    const manager = keyringManagerFor(config.keyring);
    if (!(await manager.exists())) {
      const state = existingState(config);
      if (state.length > 0) {
        throw new ConfigError(
          `PSEUDO_KEYRING_FILE: the keyring ${config.keyring.file} is missing, but this installation already has ${state.join(', ')}. ` +
            'A new keyring would make every earlier pseudonym irreversible, so none is created: restore the keyring file from its backup ' +
            '(README: Backups and restoring state). To start over with new keys knowingly, run npm run keys -- create',
        );
      }
      await manager.create();
      logger.info({ keyring: manager.description }, 'created a new keyring with key version 1 active');
    }
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
  if (erasure.registryFile && erasure.ledger.store === 'sqlite') {
    // Checked here, in the one process that starts first, before workers open it.
    const { ledger, created } = SqliteErasureLedger.open(erasure.ledger.file, erasure.ledgerHeadFile);
    await ledger.close();
    if (created) logger.info({ ledger: ledger.description, headRecord: erasure.ledgerHeadFile }, 'created a new erasure ledger and its head record');
  }
}

/** What a keyring-less start finds of an earlier one: local files only (an AWS registry is the admin CLI's). */
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
