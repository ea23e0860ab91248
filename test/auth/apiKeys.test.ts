import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ApiKeyAuthenticator, ApiKeyRegistry } from '../../api/auth/apiKeys.ts';
import { PrivateFile } from '../../api/storage/documents.ts';

const work = mkdtempSync(join(tmpdir(), 'apikeys-'));
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('API key authenticator', () => {
  it('keeps serving the loaded registry when a refresh fails, and says so', async () => {
    const file = join(work, 'keys.json');
    const registry = new ApiKeyRegistry(new PrivateFile(file));
    const { key } = await registry.create('spark', ['pseudonymize'], undefined);
    const stale: unknown[] = [];
    const authenticator = new ApiKeyAuthenticator(registry, 50, (error) => stale.push(error));
    expect((await authenticator.authenticate(key)).name).toBe('spark');
    writeFileSync(file, '{ damaged', { mode: 0o600 });
    await new Promise((r) => setTimeout(r, 60));
    expect((await authenticator.authenticate(key)).name).toBe('spark');
    expect(stale).toHaveLength(1);
    expect(String(stale[0])).toMatch(/not valid JSON/);
  });

  it('fails the first load loudly', async () => {
    const file = join(work, 'broken.json');
    writeFileSync(file, '{ damaged', { mode: 0o600 });
    const authenticator = new ApiKeyAuthenticator(new ApiKeyRegistry(new PrivateFile(file)), 50);
    await expect(authenticator.authenticate('pk_000000000000_' + 'A'.repeat(43))).rejects.toThrow(/not valid JSON/);
  });
});
