/**
 * A real local AWS endpoint: moto's server from the project venv (scripts/setup.sh), on a free
 * 127.0.0.1 port, with KMS, Secrets Manager, S3, EMR and DynamoDB answering over HTTP like AWS does. Started through
 * test/python/test_support/local_moto.py (the Python tests' launcher too), whose control port lets a test set an EMR step's
 * state: moto records steps but never runs them. The launcher also makes moto's DynamoDB item operations atomic,
 * as DynamoDB's are, so concurrency tests of the erasure ledger do not race inside moto.
 */
import { existsSync } from 'node:fs';
import { delimiter, resolve } from 'node:path';
import { CreateKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { freePort, startProcess, waitFor, type Started } from './processes.ts';

export const TEST_REGION = 'eu-west-1';

export interface Moto {
  readonly endpoint: string;
  /** Environment for AWS SDK clients and the service, pointing at this endpoint. */
  readonly env: Record<string, string>;
  /** Moves an EMR step to a state, with EMR's FailureDetails (what a real cluster would do). */
  setStepState(stepId: string, state: string, failure?: { Reason?: string; Message?: string; LogFile?: string }): Promise<void>;
  createKmsKey(): Promise<string>;
  stop(): Promise<void>;
}

export async function startMoto(): Promise<Moto> {
  const python = resolve('.venv/bin/python');
  if (!existsSync(python)) throw new Error('the venv is missing: run `npm run setup` (it holds moto[server])');
  const port = await freePort();
  const controlPort = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  // test_support is test code, not part of any installed package: it is imported from test/python.
  const pythonPath = [resolve('test/python'), globalThis.process.env.PYTHONPATH].filter(Boolean).join(delimiter);
  const process: Started = startProcess(python, ['-m', 'test_support.local_moto', '--control-port', String(controlPort), '-H', '127.0.0.1', '-p', String(port)], { PYTHONPATH: pythonPath });
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
    async setStepState(stepId, state, failure) {
      const answer = await fetch(`http://127.0.0.1:${controlPort}/emr/steps/${stepId}`, { method: 'POST', body: JSON.stringify({ state, failure }) });
      if (answer.status !== 204) throw new Error(`moto control: no step ${stepId}`);
    },
    stop: () => process.stop(),
  };
}
