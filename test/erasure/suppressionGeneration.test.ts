/**
 * A long suppression cache (PSEUDO_ERASURE_CACHE_SECONDS=300) does not outlive the keyring it was read under: a
 * subject filed under version 1 only, then `keys rotate` and `keys destroy --version 1` (which first adds the
 * subject's version-2 pseudonym to the ledger) and a keyring reload of the server, is withheld by pseudonymize at once
 * (JSON and Arrow), not after the cache's 300 seconds. The set the server held was read before the coverage, and
 * version 1, all it matched the subject by, is gone: the set must be read again under the new generation.
 */
import { execFile } from 'node:child_process';
import { Table, tableFromIPC, tableToIPC, Utf8, vectorFromArray } from 'apache-arrow';
import { afterEach, describe, expect, it } from 'vitest';
import { writeTestRegistry } from '../support/catalog.ts';
import { startTestService, type TestService } from '../support/service.ts';

const JANE = 'sentinel.generation.jane@example.com';
const ARROW = 'application/vnd.apache.arrow.stream';

let service: TestService | undefined;
afterEach(async () => {
  await service?.close();
  service = undefined;
});

/** The real CLI on the service's data folder (its keyring and ledger). */
function keys(running: TestService, args: readonly string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, PSEUDO_DATA_DIR: running.dataDir, PSEUDO_POLICY_FILE: 'test/fixtures/policies.json' };
  delete env.PSEUDO_ERASURE_REGISTRY_FILE;
  return new Promise((resolve) => {
    execFile('node_modules/.bin/tsx', ['api/cli.ts', 'keys', ...args], { env }, (error, stdout, stderr) => {
      resolve({ status: error ? Number(error.code) : 0, stdout, stderr });
    });
  });
}

describe('suppression cache across a keyring refresh', () => {
  it('reads the erased set again when the keyring generation changed, so a subject filed under a destroyed version stays withheld', async () => {
    const registry = writeTestRegistry([{ namespace: 'crm', name: 'customers', columns: { email: 'string' }, contexts: { email: 'email' } }]);
    service = await startTestService({ PSEUDO_ERASURE_REGISTRY_FILE: registry, PSEUDO_ERASURE_CACHE_SECONDS: '300', PSEUDO_KEYRING_REFRESH_SECONDS: '3600' });
    const running = service;
    const officer = await running.createKey('officer', ['privacy-officer']);
    const admin = await running.createKey('operator', ['admin']);
    const pseudonymize = async () => (await running.call('POST', '/v1/pseudonymize', { apiKey: running.keys.pseudonymize, body: { context: 'email', values: [JANE] } })).json;
    const pseudonymizeArrow = async (): Promise<{ pseudonyms: (string | null)[]; reason: (string | null)[] }> => {
      const response = await fetch(`${running.url}/v1/pseudonymize?context=email`, {
        method: 'POST',
        headers: { 'content-type': ARROW, accept: ARROW, 'x-api-key': running.keys.pseudonymize },
        body: new Uint8Array(tableToIPC(new Table({ values: vectorFromArray([JANE], new Utf8()) }), 'stream')),
      });
      expect(response.status).toBe(200);
      const table = tableFromIPC(new Uint8Array(await response.arrayBuffer()));
      return { pseudonyms: [...(table.getChild('pseudonyms')!.toArray() as (string | null)[])], reason: [...(table.getChild('reason')!.toArray() as (string | null)[])] };
    };
    const reload = async (version: number) => {
      expect((await running.call('POST', '/v1/admin/keyring/reload', { apiKey: admin })).json).toEqual({ keyVersion: version });
    };

    const filed = await running.call('POST', '/v1/erasure-requests', { apiKey: officer, body: { reference: 'DSR-GEN-1', reason: 'gdpr-art17-1a', subjects: [{ context: 'email', value: JANE }] } });
    expect(filed.status).toBe(202);
    expect((await keys(running, ['rotate'])).status).toBe(0);
    await reload(2);
    // The server reads the set now (JANE's version-1 pseudonym only) and may hold it for 300 seconds.
    expect(await pseudonymize()).toMatchObject({ pseudonyms: [null], keyVersion: 2, erased: [0] });
    expect(await pseudonymizeArrow()).toEqual({ pseudonyms: [null], reason: ['erased'] });

    const destroyed = await keys(running, ['destroy', '--version', '1', '--yes', '--no-registry']);
    expect(destroyed.status).toBe(0);
    expect((JSON.parse(destroyed.stdout) as { suppressions: unknown }).suppressions).toMatchObject({ keyVersion: 2, subjects: 1, pseudonymsAdded: 1 });
    await reload(2);

    // Version 1 is no longer readable: only the version-2 pseudonym the destroy added can match JANE.
    expect(await pseudonymize()).toMatchObject({ pseudonyms: [null], keyVersion: 2, erased: [0] });
    expect(await pseudonymizeArrow()).toEqual({ pseudonyms: [null], reason: ['erased'] });
    const other = (await running.call('POST', '/v1/pseudonymize', { apiKey: running.keys.pseudonymize, body: { context: 'email', values: ['sentinel.kept@example.com'] } })).json as { pseudonyms: string[] };
    expect(other.pseudonyms[0]).toMatch(/^s2\./);
    expect(running.logs()).not.toContain(JANE);
  });
});
