/**
 * A real local AWS endpoint: moto's server from the project venv (scripts/setup.sh), on a free
 * 127.0.0.1 port, with KMS and Secrets Manager answering over HTTP like AWS does.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { CreateKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { freePort, startProcess, waitFor, type Started } from './processes.ts';

export const TEST_REGION = 'eu-west-1';

export interface Moto {
  readonly endpoint: string;
  /** Environment for AWS SDK clients and the service, pointing at this endpoint. */
  readonly env: Record<string, string>;
  createKmsKey(): Promise<string>;
  stop(): Promise<void>;
}

export async function startMoto(): Promise<Moto> {
  const binary = resolve('.venv/bin/moto_server');
  if (!existsSync(binary)) throw new Error('moto_server is missing: run `npm run setup` (the venv holds moto[server])');
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const process: Started = startProcess(binary, ['-H', '127.0.0.1', '-p', String(port)]);
  try {
    await waitFor(async () => (await fetch(`${endpoint}/moto-api/`)).ok, 'moto_server');
  } catch (error) {
    await process.stop();
    throw new Error(`moto_server did not start: ${process.output().slice(-2000)}`, { cause: error });
  }
  const env = {
    AWS_REGION: TEST_REGION,
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    PSEUDO_AWS_ENDPOINT: endpoint,
  };
  // The SDK reads credentials from the environment of this process too.
  Object.assign(globalThis.process.env, { AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing' });
  return {
    endpoint,
    env,
    async createKmsKey() {
      const kms = new KMSClient({ region: TEST_REGION, endpoint });
      const key = await kms.send(new CreateKeyCommand({ Description: 'test keyring key' }));
      return key.KeyMetadata!.KeyId!;
    },
    stop: () => process.stop(),
  };
}
