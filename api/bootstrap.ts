/**
 * First start on the embedded defaults: create the local keyring and a first API key, so a
 * newcomer can call the API right away. The key can only pseudonymize, and its secret goes to a
 * 0600 file, never to the log. AWS keyrings and registries are created by the admin CLI instead.
 */
import { join } from 'node:path';
import { ApiKeyRegistry } from './auth/apiKeys.ts';
import type { Config } from './config/config.ts';
import { keyringManagerFor } from './keyring/fromConfig.ts';
import type { Logger } from './observability/logger.ts';
import { apiKeyDocumentsFor } from './auth/fromConfig.ts';
import { PrivateFile } from './storage/documents.ts';

export const BOOTSTRAP_KEY_FILE = 'bootstrap-api-key';

export async function bootstrapLocal(config: Config, logger: Logger): Promise<void> {
  if (config.keyring.provider === 'local') {
    const manager = keyringManagerFor(config.keyring);
    if (await manager.ensure()) logger.info({ keyring: manager.description }, 'created a new keyring with key version 1 active');
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
}
