/** Errors name what failed: a document store's failure is the keyring's, the API key registry's, or the store's own. */
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ApiKeyRegistry } from '../../api/auth/apiKeys.ts';
import { ApiKeyRegistryError, DocumentStoreError, KeyringError, type PlatformError } from '../../api/errors.ts';
import { problemResponse } from '../../api/http/problem.ts';
import { keyringManagerFor } from '../../api/keyring/fromConfig.ts';
import { PrivateFile } from '../../api/storage/documents.ts';

function worldReadable(name: string, text = '{}'): string {
  const file = join(mkdtempSync(join(tmpdir(), 'documents-')), name);
  writeFileSync(file, text);
  chmodSync(file, 0o644);
  return file;
}

async function failure(work: Promise<unknown>): Promise<PlatformError> {
  return (await work.then(() => undefined, (error: unknown) => error)) as PlatformError;
}

describe('document store errors', () => {
  it('a store that cannot be read is store-unavailable (503) on its own', async () => {
    const error = await failure(new PrivateFile(worldReadable('secret.json')).read());
    expect(error).toBeInstanceOf(DocumentStoreError);
    expect(error.code).toBe('store-unavailable');
    expect(problemResponse(error, 'r-1').status).toBe(503);
  });

  it('the API key registry names itself: api-keys-unavailable (503), unreadable or damaged', async () => {
    for (const file of [worldReadable('api-keys.json'), (() => { const f = worldReadable('damaged.json', '{"keys": 1'); chmodSync(f, 0o600); return f; })()]) {
      const error = await failure(new ApiKeyRegistry(new PrivateFile(file)).read());
      expect(error).toBeInstanceOf(ApiKeyRegistryError);
      expect(error.code).toBe('api-keys-unavailable');
      const response = problemResponse(error, 'r-2');
      expect(response.status).toBe(503);
      expect(JSON.parse(response.body) as { type: string }).toMatchObject({ type: 'urn:pseudonymization:problem:api-keys-unavailable' });
    }
  });

  it('the keyring names itself: keyring-unavailable when its store cannot be read', async () => {
    const manager = keyringManagerFor({ provider: 'local', name: 'default', file: worldReadable('keyring.json'), refreshSeconds: 60 });
    const error = await failure(manager.load());
    expect(error).toBeInstanceOf(KeyringError);
    expect(error.code).toBe('keyring-unavailable');
    expect(error.message).toMatch(/readable by other users/);
  });
});
