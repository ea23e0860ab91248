/**
 * One contract for every keyring provider: the local file (embedded default) and Secrets Manager +
 * KMS, the latter against a real moto server over HTTP. Provider-specific checks follow the suite.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetSecretValueCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyringConfig } from '../../api/config/config.ts';
import { keyringManagerFor } from '../../api/keyring/fromConfig.ts';
import type { KeyringManager } from '../../api/keyring/manager.ts';
import { startMoto, TEST_REGION, type Moto } from '../support/moto.ts';

let moto: Moto;
const work = mkdtempSync(join(tmpdir(), 'keyring-'));
let counter = 0;

beforeAll(async () => {
  moto = await startMoto();
});
afterAll(async () => {
  await moto.stop();
  rmSync(work, { recursive: true, force: true });
});

const providers: { name: string; config: () => Promise<KeyringConfig> }[] = [
  { name: 'local file', config: () => Promise.resolve({ provider: 'local', name: 'default', file: join(work, `keyring-${++counter}.json`), refreshSeconds: 60 }) },
  {
    name: 'Secrets Manager + KMS (moto)',
    config: async () => ({
      provider: 'aws',
      name: 'default',
      secretId: `pseudonymization/keyring-${++counter}`,
      kmsKeyId: await moto.createKmsKey(),
      region: TEST_REGION,
      endpoint: moto.endpoint,
      refreshSeconds: 60,
    }),
  },
];

describe.each(providers)('keyring provider contract: $name', ({ config }) => {
  let manager: KeyringManager;
  beforeAll(async () => {
    manager = keyringManagerFor(await config());
  });

  it('creates version 1 active, once', async () => {
    expect(await manager.exists()).toBe(false);
    const versions = await manager.create();
    expect(versions.map((v) => [v.version, v.state])).toEqual([[1, 'active']]);
    await expect(manager.create()).rejects.toThrow(/already exists/);
  });

  it('loads 64 bytes of key material per usable version', async () => {
    const loaded = await manager.load();
    expect(loaded).toHaveLength(1);
    expect(loaded[0]!.material).toHaveLength(64);
  });

  it('rotates: a new active version, the old one decrypt-only, both loadable, keys differ', async () => {
    const before = (await manager.load())[0]!.material!;
    const versions = await manager.rotate();
    expect(versions.map((v) => [v.version, v.state])).toEqual([[1, 'decrypt-only'], [2, 'active']]);
    const loaded = await manager.load();
    expect(Buffer.from(loaded[0]!.material!).equals(Buffer.from(before))).toBe(true);
    expect(Buffer.from(loaded[1]!.material!).equals(Buffer.from(before))).toBe(false);
  });

  it('destroys a decrypt-only version for good, never the active one', async () => {
    await expect(manager.destroy(2)).rejects.toThrow(/active/);
    await expect(manager.destroy(9)).rejects.toThrow(/does not exist/);
    const versions = await manager.destroy(1);
    expect(versions.map((v) => [v.version, v.state])).toEqual([[1, 'destroyed'], [2, 'active']]);
    const loaded = await manager.load();
    expect(loaded[0]!.material).toBeUndefined();
    expect(loaded[0]!.destroyedAt).toBeTruthy();
    expect(loaded[1]!.material).toHaveLength(64);
    expect((await manager.destroy(1)).map((v) => v.state)).toEqual(['destroyed', 'active']);
  });

  it('never lists key material', async () => {
    expect(JSON.stringify(await manager.list())).not.toMatch(/"key"/);
  });
});

describe('local file keyring', () => {
  it('writes the file with mode 0600 and refuses one other users can read', async () => {
    const file = join(work, 'mode.json');
    const manager = keyringManagerFor({ provider: 'local', name: 'default', file, refreshSeconds: 60 });
    await manager.create();
    expect(statSync(file).mode & 0o777).toBe(0o600);
    chmodSync(file, 0o644);
    await expect(manager.load()).rejects.toThrow(/readable by other users/);
  });

  it('reports a damaged file without quoting it', async () => {
    const file = join(work, 'damaged.json');
    const manager = keyringManagerFor({ provider: 'local', name: 'default', file, refreshSeconds: 60 });
    await manager.create();
    const text = readFileSync(file, 'utf8');
    const { PrivateFile } = await import('../../api/storage/documents.ts');
    await new PrivateFile(file).write(text.slice(0, 40));
    const error = (await manager.load().then(() => undefined, (e: unknown) => e)) as Error;
    expect(error.message).toMatch(/not valid JSON/);
    expect(error.message).not.toContain(text.slice(0, 40));
  });
});

describe('Secrets Manager + KMS keyring (moto)', () => {
  async function freshManager(): Promise<{ manager: KeyringManager; secretId: string; kmsKeyId: string; secrets: SecretsManagerClient }> {
    const secretId = `pseudonymization/keyring-${++counter}`;
    const kmsKeyId = await moto.createKmsKey();
    const manager = keyringManagerFor({ provider: 'aws', name: 'default', secretId, kmsKeyId, region: TEST_REGION, endpoint: moto.endpoint, refreshSeconds: 60 });
    return { manager, secretId, kmsKeyId, secrets: new SecretsManagerClient({ region: TEST_REGION, endpoint: moto.endpoint }) };
  }

  it('stores only KMS ciphertext in the secret, never the key', async () => {
    const { manager, secretId, secrets } = await freshManager();
    await manager.create();
    const material = (await manager.load())[0]!.material!;
    const stored = (await secrets.send(new GetSecretValueCommand({ SecretId: secretId }))).SecretString!;
    expect(stored).not.toContain(Buffer.from(material).toString('base64'));
    expect(stored).not.toContain(Buffer.from(material).toString('hex'));
  });

  it('binds each wrapped key to its version: a key moved to another version slot does not unwrap', async () => {
    const { manager, secretId, kmsKeyId, secrets } = await freshManager();
    await manager.create();
    await manager.rotate();
    expect(await manager.load()).toHaveLength(2);
    const document = JSON.parse((await secrets.send(new GetSecretValueCommand({ SecretId: secretId }))).SecretString!) as { versions: { key: string }[] };
    [document.versions[0]!.key, document.versions[1]!.key] = [document.versions[1]!.key, document.versions[0]!.key];
    await secrets.send(new PutSecretValueCommand({ SecretId: secretId, SecretString: JSON.stringify(document) }));
    // Same KMS key, same secret, fresh process state: only the encryption context differs.
    const reloaded = keyringManagerFor({ provider: 'aws', name: 'default', secretId, kmsKeyId, region: TEST_REGION, endpoint: moto.endpoint, refreshSeconds: 60 });
    await expect(reloaded.load()).rejects.toThrow(/KMS Decrypt of key version 1 failed: InvalidCiphertextException/);
  });

  it('leaves no current or previous secret version holding a destroyed key', async () => {
    const { manager, secretId, secrets } = await freshManager();
    await manager.create();
    await manager.rotate();
    await manager.destroy(1);
    for (const stage of ['AWSCURRENT', 'AWSPREVIOUS']) {
      const document = JSON.parse((await secrets.send(new GetSecretValueCommand({ SecretId: secretId, VersionStage: stage }))).SecretString!) as {
        versions: { version: number; key?: string }[];
      };
      expect(document.versions.find((v) => v.version === 1)!.key, stage).toBeUndefined();
    }
  });
});
