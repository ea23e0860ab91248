/** Builds the keyring manager the configuration asks for. */
import type { KeyringConfig } from '../config/config.ts';
import { PrivateFile, SecretsManagerSecret } from '../storage/documents.ts';
import { KmsWrappedKeys } from './kmsWrappedKeys.ts';
import { KeyringManager } from './manager.ts';
import { PlainKeys } from './plainKeys.ts';

export function keyringManagerFor(config: KeyringConfig): KeyringManager {
  if (config.provider === 'local') return new KeyringManager(new PrivateFile(config.file), new PlainKeys(), config.name);
  const endpoint = { region: config.region, endpoint: config.endpoint };
  return new KeyringManager(
    new SecretsManagerSecret({ ...endpoint, secretId: config.secretId, kmsKeyId: config.kmsKeyId, purpose: 'Pseudonymization keyring: KMS-wrapped data keys by version' }),
    new KmsWrappedKeys(config.kmsKeyId, endpoint),
    config.name,
  );
}
