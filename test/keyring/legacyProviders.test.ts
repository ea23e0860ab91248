/**
 * Importing the AWS sample's key on every keyring provider: the local file and Secrets Manager + KMS (a real moto
 * server over HTTP). The imported version is stored like any version (KMS ciphertext under the keyring's encryption
 * context in AWS, never the sample's key), loads back, decrypts the sample's vectors, is never active (a rotation
 * leaves it as it is), and is destroyed like any version.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyringConfig } from '../../api/config/config.ts';
import { AwsSampleKey, parseAwsSamplePseudonym, parseAwsSampleSecret } from '../../api/engine/legacyAwsSample.ts';
import { keyringManagerFor } from '../../api/keyring/fromConfig.ts';
import { Keyring } from '../../api/keyring/keyring.ts';
import { startMoto, TEST_REGION, type Moto } from '../support/moto.ts';

interface Fixture {
  secret: Record<string, unknown>;
  deterministic: { identifier: string; pseudonym: string }[];
}
const fixture = JSON.parse(readFileSync('test/fixtures/aws-sample-vectors.json', 'utf8')) as Fixture;
const secretText = JSON.stringify(fixture.secret);

let moto: Moto;
const work = mkdtempSync(join(tmpdir(), 'legacy-keyring-'));
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
      secretId: `pseudonymization/legacy-keyring-${++counter}`,
      kmsKeyId: await moto.createKmsKey(),
      region: TEST_REGION,
      endpoint: moto.endpoint,
      refreshSeconds: 60,
    }),
  },
];

describe.each(providers)('importing the AWS sample key: $name', ({ config }) => {
  it('stores it wrapped like any version, loads it back as the sample key of its contexts, and never makes it active', async () => {
    const keyringConfig = await config();
    const manager = keyringManagerFor(keyringConfig);
    await manager.create();
    const secret = parseAwsSampleSecret(secretText);
    const listing = await manager.importAwsSample(secret, ['vin', 'email', 'vin']);
    expect(secret.material.every((byte) => byte === 0)).toBe(true);
    expect(listing[1]).toMatchObject({ version: 2, state: 'decrypt-only', legacy: { kind: 'legacy-aws-sample', contexts: ['vin', 'email'] } });

    const stored =
      keyringConfig.provider === 'local'
        ? readFileSync(keyringConfig.file, 'utf8')
        : (await new SecretsManagerClient({ region: TEST_REGION, endpoint: moto.endpoint }).send(new GetSecretValueCommand({ SecretId: keyringConfig.secretId }))).SecretString!;
    expect(stored).not.toContain(String(fixture.secret.encodedSecretKey));
    const freshMaterial = parseAwsSampleSecret(secretText).material;
    const loaded = await manager.load();
    expect(Buffer.from(loaded[1]!.material!).equals(Buffer.from(freshMaterial))).toBe(true);
    if (keyringConfig.provider === 'aws') expect(stored).not.toContain(Buffer.from(freshMaterial).toString('base64'));

    const keyring = new Keyring();
    keyring.apply(loaded);
    expect(keyring.active().version).toBe(1);
    expect(keyring.readable().map((key) => key.version)).toEqual([1]);
    expect(keyring.lookup(2).kind).toBe('unknown');
    expect(keyring.legacyFor('vin').keys.map((key) => key.version)).toEqual([2]);
    expect(keyring.legacyFor('dead_letter').keys).toEqual([]);
    const [vector] = fixture.deterministic;
    const plaintext = keyring.legacyFor('email').keys[0]!.decrypt(parseAwsSamplePseudonym(vector!.pseudonym, 4096)!);
    expect(Buffer.from(plaintext!).toString('utf8')).toBe(vector!.identifier);
    expect(new AwsSampleKey(9, ['vin'], freshMaterial, 5, 17).deterministicPseudonym(vector!.identifier)).toBe(vector!.pseudonym);

    // A rotation makes a new active version and leaves the imported one decrypt-only.
    const rotated = await manager.rotate();
    expect(rotated.map((v) => [v.version, v.state])).toEqual([
      [1, 'decrypt-only'],
      [2, 'decrypt-only'],
      [3, 'active'],
    ]);
    keyring.apply(await manager.load());
    expect(keyring.active().version).toBe(3);
    expect(keyring.legacyFor('vin').keys).toHaveLength(1);

    const destroyed = await manager.destroy(2);
    expect(destroyed[1]).toMatchObject({ version: 2, state: 'destroyed', legacy: { kind: 'legacy-aws-sample' } });
    keyring.apply(await manager.load());
    expect(keyring.legacyFor('vin')).toEqual({ keys: [], destroyed: true });
    keyring.close();
  });
});
