/** Where the API key registry lives, as the configuration says. */
import type { ApiKeysConfig } from '../config/config.ts';
import { PrivateFile, SecretsManagerSecret, type TextDocumentStore } from '../storage/documents.ts';

export function apiKeyDocumentsFor(config: ApiKeysConfig): TextDocumentStore {
  return config.provider === 'local'
    ? new PrivateFile(config.file)
    : new SecretsManagerSecret({ secretId: config.secretId, region: config.region, endpoint: config.endpoint, purpose: 'Pseudonymization API key hashes' });
}
