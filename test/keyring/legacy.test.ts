/**
 * The AWS sample's pseudonyms carried over: its secret imported with `npm run keys -- import-aws-sample` (as a
 * process, on the test service's local keyring) as a decrypt-only version bound to its contexts; then, over HTTP,
 * reidentify answers every vector the sample's own Java classes wrote (test/fixtures/aws-sample-vectors.json), rewrap turns each into
 * the pseudonym /v1/pseudonymize gives, erased subjects stay erased, and tampered, unbound and destroyed-key
 * pseudonyms fail per item. AES-GCM-SIV is @noble/ciphers' `gcmsiv` only (the cross-check below).
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gcmsiv } from '@noble/ciphers/aes.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AwsSampleKey, parseAwsSamplePseudonym, parseAwsSampleSecret } from '../../api/engine/legacyAwsSample.ts';
import { writeTestRegistry } from '../support/catalog.ts';
import { startTestService, type TestService } from '../support/service.ts';

interface Vector {
  identifier: string;
  pseudonym: string;
  reidentified: string;
}
interface Fixture {
  secret: Record<string, unknown>;
  deterministic: Vector[];
  nonDeterministic: Vector[];
}

const fixture = JSON.parse(readFileSync('test/fixtures/aws-sample-vectors.json', 'utf8')) as Fixture;
const vectors = [...fixture.deterministic, ...fixture.nonDeterministic];
// The sample's secret as it keeps it in Secrets Manager, with the API key it also holds (ignored by the import).
const secretText = JSON.stringify({ ...fixture.secret, api_key_value: 'sentinel-sample-api-key-value' });

interface Run {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

function keys(service: TestService, args: readonly string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile('node_modules/.bin/tsx', ['api/cli.ts', 'keys', ...args], { env: { ...process.env, PSEUDO_DATA_DIR: service.dataDir } }, (error, stdout, stderr) => {
      resolve({ status: error ? Number(error.code) : 0, stdout, stderr });
    });
  });
}

interface Answer {
  values?: (string | null)[];
  pseudonyms?: (string | null)[];
  errors?: { index: number; reason: string }[];
  erased?: number[];
}

/** The same pseudonym with one ciphertext byte changed, still in the sample's format. */
function tampered(pseudonym: string): string {
  const bytes = Buffer.from(pseudonym, 'base64');
  bytes[bytes.length - 20]! ^= 0x01;
  return bytes.toString('base64');
}

describe('AES-GCM-SIV cross-check against the sample', () => {
  it('is the AES-256-GCM-SIV of RFC 8452 (Appendix C.2, first two vectors)', () => {
    const hex = (text: string) => Uint8Array.from(Buffer.from(text, 'hex'));
    const key = hex('0100000000000000000000000000000000000000000000000000000000000000');
    const nonce = hex('030000000000000000000000');
    expect(Buffer.from(gcmsiv(key, nonce).encrypt(new Uint8Array(0))).toString('hex')).toBe('07f5f4169bbf55a8400cd47ea6fd400f');
    expect(Buffer.from(gcmsiv(key, nonce).encrypt(hex('0100000000000000'))).toString('hex')).toBe('c2ef328e5c71c83b843122130f7364b761e0b97427e3df28');
  });

  it("decrypts every vector with noble's gcmsiv, and recomputes every deterministic one from the sample's HMAC nonce", () => {
    const { material, nonceStrPos, nonceEndPos } = parseAwsSampleSecret(secretText);
    const key = new AwsSampleKey(1, ['vin'], material, nonceStrPos, nonceEndPos);
    for (const vector of vectors) {
      const payload = parseAwsSamplePseudonym(vector.pseudonym, 4096);
      expect(payload).toBeDefined();
      expect(Buffer.from(key.decrypt(payload!)!).toString('utf8')).toBe(vector.identifier);
    }
    for (const vector of fixture.deterministic) expect(key.deterministicPseudonym(vector.identifier)).toBe(vector.pseudonym);
    // Only the canonical base64 spelling is the sample's pseudonym; this service's own format is not.
    expect(parseAwsSamplePseudonym(fixture.deterministic[1]!.pseudonym.replace(/=*$/, ''), 4096)).toBeUndefined();
    expect(parseAwsSamplePseudonym('s1.D12AeJnqxpgQdVcBj2VYjrTEMB4g0cX0OFXtu0If_ZIn', 4096)).toBeUndefined();
    expect(key.decrypt(parseAwsSamplePseudonym(tampered(vectors[0]!.pseudonym), 4096)!)).toBeUndefined();
    key.destroy();
  });

  it('refuses a secret of another shape, naming the field and never a value', () => {
    expect(() => parseAwsSampleSecret(JSON.stringify({ ...fixture.secret, encodedSecretKey: 'c2VudGluZWwta2V5' }))).toThrow(/encodedSecretKey must be 32 bytes/);
    expect(() => parseAwsSampleSecret(JSON.stringify({ ...fixture.secret, nonceEndPos: 99 }))).toThrow(/nonceStrPos\.\.nonceEndPos/);
    expect(() => parseAwsSampleSecret(JSON.stringify({ encodedSecretKey: fixture.secret.encodedSecretKey }))).toThrow(/^(?!.*AyA9).*encodedNonceKey/);
  });
});

describe('legacy AWS sample version over HTTP', () => {
  let service: TestService;
  let admin: string;
  let rewrapper: string;
  let officer: string;
  let secretFile: string;
  let registry: string;

  const post = async (path: string, apiKey: string, body: unknown): Promise<Answer> => {
    const answer = await service.call('POST', path, { apiKey, body });
    expect(answer.status).toBe(200);
    return answer.json as Answer;
  };
  const reload = async (): Promise<void> => {
    expect((await service.call('POST', '/v1/admin/keyring/reload', { apiKey: admin })).status).toBe(200);
  };

  beforeAll(async () => {
    registry = writeTestRegistry([{ namespace: 'fleet', name: 'vehicles', columns: { vin: 'string' }, contexts: { vin: 'vin' } }]);
    // An hour between refreshes: only the reloads below bring the keyring's changes in.
    service = await startTestService({ PSEUDO_KEYRING_REFRESH_SECONDS: '3600', PSEUDO_ERASURE_REGISTRY_FILE: registry });
    admin = await service.createKey('operator', ['admin']);
    rewrapper = await service.createKey('rekey', ['rewrap']);
    officer = await service.createKey('officer', ['privacy-officer']);
    secretFile = join(service.dataDir, 'sample-secret.json');
    writeFileSync(secretFile, secretText, { mode: 0o600 });
  });
  afterAll(async () => service.close());

  it('imports the secret as a decrypt-only legacy-aws-sample version bound to its contexts, with no key in the output', async () => {
    const run = await keys(service, ['import-aws-sample', '--secret-file', secretFile, '--contexts', 'vin,email']);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const listing = JSON.parse(run.stdout) as { versions: unknown[] };
    expect(listing.versions).toEqual([
      { version: 1, state: 'active', createdAt: expect.any(String) as unknown },
      { version: 2, state: 'decrypt-only', createdAt: expect.any(String) as unknown, legacy: { kind: 'legacy-aws-sample', contexts: ['vin', 'email'], nonceStrPos: 5, nonceEndPos: 17 } },
    ]);
    expect(run.stdout).not.toContain(String(fixture.secret.encodedSecretKey));
    expect(run.stdout).not.toContain(String(fixture.secret.encodedNonceKey));
    // Stored like every version (plain base64 in the local 0600 file), never as the sample wrote it.
    const stored = readFileSync(service.config.keyring.provider === 'local' ? service.config.keyring.file : '', 'utf8');
    expect(stored).not.toContain(String(fixture.secret.encodedSecretKey));
    expect(stored).not.toContain('sentinel-sample-api-key-value');
    await reload();
  });

  it('refuses an import without contexts or secret file (exit 2), and a secret of another shape (exit 1), naming no value', async () => {
    expect((await keys(service, ['import-aws-sample', '--secret-file', secretFile])).status).toBe(2);
    expect((await keys(service, ['import-aws-sample', '--contexts', 'vin'])).status).toBe(2);
    const bad = join(service.dataDir, 'bad-secret.json');
    writeFileSync(bad, JSON.stringify({ encodedSecretKey: 'c2VudGluZWwta2V5' }));
    const refused = await keys(service, ['import-aws-sample', '--secret-file', bad, '--contexts', 'vin']);
    expect(refused.status).toBe(1);
    expect(refused.stderr).not.toContain('c2VudGluZWwta2V5');
  });

  it('reidentifies every vector (deterministic and randomized, ASCII and multi-byte UTF-8) in both bound contexts', async () => {
    for (const context of ['vin', 'email']) {
      const answer = await post('/v1/reidentify', service.keys.reidentify, { context, pseudonyms: [...vectors.map((v) => v.pseudonym), null] });
      expect(answer).toEqual({ values: [...vectors.map((v) => v.identifier), null], errors: [] });
    }
  });

  it("answers the sample's own client through the compatibility route: its old pseudonyms reidentify unchanged", async () => {
    const answer = await service.call('POST', '/compat/contexts/email/reidentification', { apiKey: service.keys.reidentify, body: { reidentifications: vectors.map((v) => v.pseudonym) } });
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ identifiers: vectors.map((v) => v.identifier) });
  });

  it('rewraps every vector into the pseudonym /v1/pseudonymize gives, and those reidentify as usual', async () => {
    const ours = await post('/v1/pseudonymize', service.keys.pseudonymize, { context: 'vin', values: vectors.map((v) => v.identifier) });
    const rewrapped = await post('/v1/rewrap', rewrapper, { context: 'vin', pseudonyms: vectors.map((v) => v.pseudonym) });
    expect(rewrapped).toEqual({ pseudonyms: ours.pseudonyms, keyVersion: 1, errors: [] });
    expect(ours.pseudonyms!.every((p) => p!.startsWith('s1.'))).toBe(true);
    const back = await post('/v1/reidentify', service.keys.reidentify, { context: 'vin', pseudonyms: rewrapped.pseudonyms });
    expect(back.values).toEqual(vectors.map((v) => v.identifier));
    // The legacy version is never used to pseudonymize.
    expect((await post('/v1/pseudonymize', service.keys.pseudonymize, { context: 'vin', values: ['x'] })).pseudonyms![0]!.startsWith('s1.')).toBe(true);
  });

  it('fails per item a tampered pseudonym, one under a context the key is not bound to, and a non-pseudonym', async () => {
    const [first, second] = vectors;
    const answer = await post('/v1/reidentify', service.keys.reidentify, { context: 'vin', pseudonyms: [tampered(first!.pseudonym), second!.pseudonym, 'bm90LWEtcHNldWRvbnlt'] });
    expect(answer).toEqual({ values: [null, second!.identifier, null], errors: [{ index: 0, reason: 'authentication-failed' }, { index: 2, reason: 'malformed' }] });
    const unbound = await post('/v1/reidentify', service.keys.reidentify, { context: 'dead_letter', pseudonyms: [first!.pseudonym] });
    expect(unbound).toEqual({ values: [null], errors: [{ index: 0, reason: 'malformed' }] });
    const rewrap = await post('/v1/rewrap', rewrapper, { context: 'vin', pseudonyms: [tampered(first!.pseudonym), second!.pseudonym] });
    expect(rewrap.pseudonyms![0]).toBeNull();
    expect(rewrap.errors).toEqual([{ index: 0, reason: 'authentication-failed' }]);
  });

  it("withholds an erased subject's legacy pseudonyms from reidentify and rewrap (null, erased)", async () => {
    const erasedVector = fixture.deterministic.find((v) => v.identifier === 'jane.doe@example.com')!;
    const randomized = fixture.nonDeterministic.find((v) => v.identifier === erasedVector.identifier)!;
    const kept = fixture.deterministic[0]!;
    const filed = await service.call('POST', '/v1/erasure-requests', { apiKey: officer, body: { reference: 'GDPR-2026-900', reason: 'gdpr-art17-1a', subjects: [{ context: 'vin', value: erasedVector.identifier }] } });
    expect(filed.status).toBe(202);
    const pseudonyms = [erasedVector.pseudonym, kept.pseudonym, randomized.pseudonym];
    const reidentified = await post('/v1/reidentify', service.keys.reidentify, { context: 'vin', pseudonyms });
    expect(reidentified).toEqual({ values: [null, kept.identifier, null], errors: [{ index: 0, reason: 'erased' }, { index: 2, reason: 'erased' }] });
    const rewrapped = await post('/v1/rewrap', rewrapper, { context: 'vin', pseudonyms });
    expect(rewrapped.pseudonyms![0]).toBeNull();
    expect(rewrapped.pseudonyms![2]).toBeNull();
    expect(rewrapped.pseudonyms![1]).toMatch(/^s1\./);
    expect(rewrapped.erased).toEqual([0, 2]);
    // Filed by the sample's pseudonym: resolved inside the service, and every token of the subject is withheld.
    const byPseudonym = fixture.deterministic.find((v) => v.identifier === '0123456789abcdefg')!;
    const filedByPseudonym = await service.call('POST', '/v1/erasure-requests', { apiKey: officer, body: { reference: 'GDPR-2026-901', reason: 'gdpr-art17-1a', subjects: [{ context: 'vin', pseudonym: byPseudonym.pseudonym }] } });
    expect(filedByPseudonym.status).toBe(202);
    const sameSubject = [fixture.nonDeterministic.find((v) => v.identifier === byPseudonym.identifier)!.pseudonym, byPseudonym.pseudonym];
    expect((await post('/v1/reidentify', service.keys.reidentify, { context: 'vin', pseudonyms: sameSubject })).values).toEqual([null, null]);
    expect((await post('/v1/pseudonymize', service.keys.pseudonymize, { context: 'vin', values: [byPseudonym.identifier] })).erased).toEqual([0]);
    // After a rotation too: the subject's pseudonyms are computed under every readable version from the value.
    expect((await keys(service, ['rotate'])).status).toBe(0);
    await reload();
    const afterRotation = await post('/v1/rewrap', rewrapper, { context: 'vin', pseudonyms });
    expect(afterRotation.pseudonyms![1]).toMatch(/^s3\./);
    expect(afterRotation.erased).toEqual([0, 2]);
    expect((await post('/v1/reidentify', service.keys.reidentify, { context: 'vin', pseudonyms })).values).toEqual([null, kept.identifier, null]);
  });

  it('after destroy of the legacy version, its pseudonyms fail per item with key-destroyed', async () => {
    // The registry's table has no key inventory (no re-keying job ran here): the check refuses, --force overrides.
    const refused = await keys(service, ['destroy', '--version', '2', '--yes', '--registry', registry]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain('local.fleet.vehicles');
    const destroyed = await keys(service, ['destroy', '--version', '2', '--yes', '--force', '--registry', registry]);
    expect(destroyed.status).toBe(0);
    expect((JSON.parse(destroyed.stdout) as { versions: { version: number; state: string }[] }).versions.find((v) => v.version === 2)).toMatchObject({ state: 'destroyed', legacy: { kind: 'legacy-aws-sample' } });
    await reload();
    const answer = await post('/v1/reidentify', service.keys.reidentify, { context: 'vin', pseudonyms: [vectors[0]!.pseudonym, vectors[1]!.pseudonym] });
    expect(answer).toEqual({ values: [null, null], errors: [{ index: 0, reason: 'key-destroyed' }, { index: 1, reason: 'key-destroyed' }] });
    const rewrap = await post('/v1/rewrap', rewrapper, { context: 'email', pseudonyms: [vectors[0]!.pseudonym] });
    expect(rewrap.errors).toEqual([{ index: 0, reason: 'key-destroyed' }]);
  });

  it('puts no identifier, pseudonym or key of the sample in any log line', () => {
    const logs = service.logs();
    expect(logs.length).toBeGreaterThan(0);
    for (const vector of vectors) {
      expect(logs).not.toContain(vector.pseudonym);
      if (vector.identifier.length > 3) expect(logs).not.toContain(vector.identifier);
    }
    expect(logs).not.toContain(String(fixture.secret.encodedSecretKey));
    expect(logs).not.toContain(String(fixture.secret.encodedNonceKey));
    expect(logs).not.toContain('sentinel-sample-api-key-value');
  });
});
