/**
 * The admin CLI (`npm run keys`, `npm run apikeys`, `npm run audit`) as a process on the local providers in a
 * fresh data folder: --help for each area, usage and exit 2 on a usage or configuration error, exit 1 when the
 * command fails, and API key creation that never overwrites the only copy of a key that stays active.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';

interface Run {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

interface Listing {
  id: string;
  name: string;
  revokedAt: string | null;
}

const work = mkdtempSync(join(tmpdir(), 'admin-cli-'));
let dataDir: string;
let folders = 0;

beforeEach(() => {
  dataDir = join(work, `data-${++folders}`);
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

function cli(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile('node_modules/.bin/tsx', ['api/cli.ts', ...args], { env: { ...process.env, PSEUDO_DATA_DIR: dataDir, ...env } }, (error, stdout, stderr) => {
      resolve({ status: error ? Number(error.code) : 0, stdout, stderr });
    });
  });
}

async function createKey(...args: string[]): Promise<Run> {
  return cli(['apikeys', 'create', ...args]);
}

async function listKeys(): Promise<Listing[]> {
  const listed = await cli(['apikeys', 'list']);
  expect(listed.status).toBe(0);
  return (JSON.parse(listed.stdout) as { keys: Listing[] }).keys;
}

const keyIdIn = (file: string): string | undefined => /^pk_([0-9a-f]{12})_/.exec(readFileSync(file, 'utf8'))?.[1];

describe('help and usage', () => {
  it.each([
    [['keys', '--help'], 'usage: npm run keys -- <command>'],
    [['keys', 'destroy', '--help'], 'usage: npm run keys -- <command>'],
    [['apikeys', '--help'], 'usage: npm run apikeys -- <command>'],
    [['apikeys', 'create', '-h'], 'usage: npm run apikeys -- <command>'],
    [['audit', '--help'], 'usage: npm run audit -- <command>'],
    [['--help'], 'usage: npm run keys -- <command> | npm run apikeys'],
  ])('%j prints its usage with examples and exits 0', async (args, usage) => {
    const result = await cli(args);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain(usage);
    expect(result.stdout).toContain('examples');
  });

  it.each([
    [['apikeys'], 'apikeys needs a command: create, list or revoke', 'usage: npm run apikeys'],
    [['keys'], 'keys needs a command', 'usage: npm run keys'],
    [['apikeys', 'shred'], 'unknown apikeys command', 'usage: npm run apikeys'],
    [['apikeys', 'create', '--roles', 'reidentify'], 'create needs --name', 'usage: npm run apikeys'],
    [['apikeys', 'list', '--shards', '2'], "Unknown option '--shards'", 'usage: npm run apikeys'],
    [['keys', 'list', 'extra'], 'unexpected arguments', 'usage: npm run keys'],
    [['vault', 'open'], 'unknown command', 'usage: npm run keys -- <command> | npm run apikeys'],
  ])('%j is a usage error: the reason, the usage, exit 2', async (args, reason, usage) => {
    const result = await cli(args);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(reason);
    expect(result.stderr).toContain(usage);
    expect(result.stdout).toBe('');
  });

  it('a bad setting is a configuration error naming the variable: exit 2', async () => {
    const result = await cli(['keys', 'list'], { PSEUDO_KEYRING: 'vault' });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('PSEUDO_KEYRING');
  });

  it('a command that fails exits 1', async () => {
    const result = await cli(['apikeys', 'revoke', '--id', '0123456789ab']);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('no API key with id');
  });
});

describe('apikeys create with a name or a file already in use', () => {
  it('refuses a second key of an active name, keeping the first key and its file', async () => {
    const first = await createKey('--name', 'steward', '--roles', 'reidentify');
    expect(first.status).toBe(0);
    const { created, secretFile } = JSON.parse(first.stdout) as { created: Listing; secretFile: string };
    expect(secretFile).toBe(join(dataDir, 'api-keys', 'steward.key'));
    const before = readFileSync(secretFile, 'utf8');

    const again = await createKey('--name', 'steward', '--roles', 'reidentify');
    expect(again.status).toBe(1);
    expect(again.stderr).toContain(`an active API key is named steward (id ${created.id})`);
    expect(again.stderr).toContain('--force');
    expect(again.stderr).not.toContain(before.trim());
    expect(readFileSync(secretFile, 'utf8')).toBe(before);
    expect(await listKeys()).toEqual([expect.objectContaining({ id: created.id, revokedAt: null })]);
  });

  it('with --force revokes the old key and writes the new one in its place', async () => {
    const first = JSON.parse((await createKey('--name', 'steward', '--roles', 'reidentify')).stdout) as { created: Listing; secretFile: string };
    const forced = await createKey('--name', 'steward', '--roles', 'reidentify', '--force');
    expect(forced.status).toBe(0);
    const second = JSON.parse(forced.stdout) as { created: Listing; secretFile: string; revoked: string[] };
    expect(second.revoked).toEqual([first.created.id]);
    expect(second.secretFile).toBe(first.secretFile);
    expect(keyIdIn(second.secretFile)).toBe(second.created.id);
    const keys = await listKeys();
    expect(keys.find((key) => key.id === first.created.id)?.revokedAt).toEqual(expect.any(String));
    expect(keys.find((key) => key.id === second.created.id)?.revokedAt).toBeNull();
  });

  it('refuses to overwrite an --out file holding another active key, and with --force revokes that key', async () => {
    const spark = JSON.parse((await createKey('--name', 'spark', '--roles', 'pseudonymize')).stdout) as { created: Listing; secretFile: string };
    const refused = await createKey('--name', 'producer', '--roles', 'pseudonymize', '--out', spark.secretFile);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain(`holds the active key ${spark.created.id}`);
    expect(keyIdIn(spark.secretFile)).toBe(spark.created.id);

    const forced = JSON.parse((await createKey('--name', 'producer', '--roles', 'pseudonymize', '--out', spark.secretFile, '--force')).stdout) as { created: Listing; revoked: string[] };
    expect(forced.revoked).toEqual([spark.created.id]);
    expect(keyIdIn(spark.secretFile)).toBe(forced.created.id);
  });

  it('refuses to overwrite any existing file without --force, and a revoked name is free again', async () => {
    const file = join(work, `other-${folders}.txt`);
    writeFileSync(file, 'not a key\n');
    const refused = await createKey('--name', 'batch', '--roles', 'pseudonymize', '--out', file);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain(`${file} exists`);
    expect(readFileSync(file, 'utf8')).toBe('not a key\n');

    const first = JSON.parse((await createKey('--name', 'batch', '--roles', 'pseudonymize', '--out', join(work, `batch-${folders}.key`))).stdout) as { created: Listing };
    expect((await cli(['apikeys', 'revoke', '--id', first.created.id])).status).toBe(0);
    expect((await createKey('--name', 'batch', '--roles', 'pseudonymize')).status).toBe(0);
  });
});
