/**
 * When a start may create the local keyring (issue 16, fault 9): only on a first start with no other state, or by
 * an explicit `keys create`. A keyring file deleted while API keys or an erasure ledger exist is refused (exit 2,
 * the file named, how to restore it), never silently replaced by a new version 1 that reverses nothing.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bootstrapLocal } from '../../api/bootstrap.ts';
import { ConfigError } from '../../api/errors.ts';
import { createLogger } from '../../api/observability/logger.ts';
import { writeLocalCatalog } from '../support/catalog.ts';
import { testConfig } from '../support/service.ts';

const work = mkdtempSync(join(tmpdir(), 'keyring-startup-'));
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});
const silent = createLogger('fatal', { write: () => undefined });

function run(script: string, args: string[], env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    execFile('node', ['--import', 'tsx', script, ...args], { env: { ...process.env, PSEUDO_PORT: '0', PSEUDO_POLICY_FILE: 'test/fixtures/policies.json', ...env }, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, output: stdout + stderr });
    });
  });
}

async function refusal(work: () => Promise<unknown>): Promise<ConfigError> {
  try {
    await work();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('the start was not refused');
}

describe('the local keyring at start', () => {
  it('is created on a first start with nothing else, along with the first API key', async () => {
    const dataDir = join(work, 'first');
    const config = testConfig(dataDir);
    await bootstrapLocal(config, silent);
    expect(existsSync(join(dataDir, 'keyring.json'))).toBe(true);
    expect(existsSync(join(dataDir, 'api-keys.json'))).toBe(true);
    const keyring = readFileSync(join(dataDir, 'keyring.json'), 'utf8');
    await bootstrapLocal(config, silent);
    expect(readFileSync(join(dataDir, 'keyring.json'), 'utf8')).toBe(keyring);
  });

  it('is never recreated while API keys exist: refused naming the file and how to restore it', async () => {
    const dataDir = join(work, 'deleted');
    const config = testConfig(dataDir);
    await bootstrapLocal(config, silent);
    rmSync(join(dataDir, 'keyring.json'));
    const refused = await refusal(() => bootstrapLocal(config, silent));
    expect(refused.key).toBe('PSEUDO_KEYRING_FILE');
    expect(refused.message).toContain(`the keyring ${join(dataDir, 'keyring.json')} is missing`);
    expect(refused.message).toContain(`an API key registry (${join(dataDir, 'api-keys.json')})`);
    expect(refused.message).toContain('restore the keyring file from its backup');
    expect(refused.message).toContain('npm run keys -- create');
    expect(existsSync(join(dataDir, 'keyring.json'))).toBe(false);
  });

  it('is never recreated while only an erasure ledger remains (API keys elsewhere)', async () => {
    const dataDir = join(work, 'ledger-only');
    const folder = join(work, 'ledger-only-registry');
    mkdirSync(folder, { recursive: true });
    const catalog = writeLocalCatalog(folder, [{ namespace: 'crm', name: 'customers', columns: { id: 'long', email: 'string' } }]);
    const registry = join(folder, 'registry.json');
    writeFileSync(registry, JSON.stringify({ catalog: { type: 'jdbc', name: 'local', ...catalog }, tables: [{ name: 'local.crm.customers', columns: { email: 'email' } }] }));
    const config = testConfig(dataDir, { PSEUDO_ERASURE_REGISTRY_FILE: registry });
    await bootstrapLocal(config, silent);
    for (const file of ['keyring.json', 'api-keys.json', 'bootstrap-api-key']) rmSync(join(dataDir, file));
    const refused = await refusal(() => bootstrapLocal(config, silent));
    expect(refused.message).toContain(`an erasure ledger head record (${config.erasure.ledgerHeadFile})`);
    expect(refused.message).toContain(`an erasure ledger (${config.erasure.ledgerFile})`);
    expect(existsSync(join(dataDir, 'keyring.json'))).toBe(false);
  });

  it('refuses npm start with exit 2; an explicit keys create makes one, and the service starts again', async () => {
    const dataDir = join(work, 'process');
    const env = { PSEUDO_DATA_DIR: dataDir };
    await bootstrapLocal(testConfig(dataDir), silent);
    rmSync(join(dataDir, 'keyring.json'));

    const refused = await run('api/main.ts', [], env);
    expect(refused.code).toBe(2);
    expect(refused.output).toContain(`cannot start: PSEUDO_KEYRING_FILE: the keyring ${join(dataDir, 'keyring.json')} is missing`);
    expect(existsSync(join(dataDir, 'keyring.json'))).toBe(false);

    const created = await run('api/cli.ts', ['keys', 'create'], env);
    expect(created.code).toBe(0);
    expect(existsSync(join(dataDir, 'keyring.json'))).toBe(true);
    // With a keyring in place the start goes on (bootstrap passes; the server itself is not needed here).
    await bootstrapLocal(testConfig(dataDir), silent);
  });
});
