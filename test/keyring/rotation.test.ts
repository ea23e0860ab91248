/**
 * Rotation takes effect predictably: a running server reloads its keyring at once on POST /v1/admin/keyring/reload
 * (role admin, audited) and on SIGHUP, long before its refresh interval. Under load, no request fails and every
 * answer is made under one version, the old or the new one: all its pseudonyms carry the answer's keyVersion.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { keyringManagerFor } from '../../api/keyring/fromConfig.ts';
import { freePort, startProcess, waitFor } from '../support/processes.ts';
import { call, startTestService, testConfig } from '../support/service.ts';

const work = mkdtempSync(join(tmpdir(), 'rotation-'));
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

interface Answer {
  pseudonyms: string[];
  keyVersion: number;
}

const values = (worker: number, round: number) => Array.from({ length: 200 }, (_, k) => `VIN${worker}R${round}K${k}`.padEnd(17, '0'));

describe('rotation under load on a running server', () => {
  it('serves every request while it rotates and reloads, each answer under one version, old or new', async () => {
    // An hour between refreshes: only the reload can switch the server during this test.
    const service = await startTestService({ PSEUDO_KEYRING_REFRESH_SECONDS: '3600' });
    try {
      const admin = await service.createKey('operator', ['admin']);
      const answers: { status: number; body: unknown }[] = [];
      let rotated = false;
      let roundsAfter = 0;
      const worker = async (id: number) => {
        // Keep sending until every worker has sent a few rounds after the reload answered.
        for (let round = 0; !rotated || roundsAfter < 40; round++) {
          const deterministic = round % 3 !== 0;
          const response = await service.call('POST', '/v1/pseudonymize', { apiKey: service.keys.pseudonymize, body: { context: 'vin', values: values(id, round), deterministic } });
          answers.push({ status: response.status, body: response.json });
          if (rotated) roundsAfter++;
        }
      };
      const load = Array.from({ length: 8 }, (_, id) => worker(id));
      await waitFor(async () => Promise.resolve(answers.length >= 40), 'load under the first version');
      await keyringManagerFor(service.config.keyring).rotate();
      const reload = await service.call('POST', '/v1/admin/keyring/reload', { apiKey: admin });
      rotated = true;
      await Promise.all(load);

      expect(reload.status).toBe(200);
      expect(reload.json).toEqual({ keyVersion: 2 });
      expect(answers.filter((a) => a.status !== 200)).toEqual([]);
      const versions = new Set<number>();
      for (const { body } of answers) {
        const { pseudonyms, keyVersion } = body as Answer;
        expect([1, 2]).toContain(keyVersion);
        versions.add(keyVersion);
        const prefixes = new Set(pseudonyms.map((p) => p.slice(0, p.indexOf('.') + 1)));
        expect([...prefixes].every((prefix) => prefix === `s${keyVersion}.` || prefix === `r${keyVersion}.`)).toBe(true);
      }
      expect([...versions].sort()).toEqual([1, 2]);
      // Once the reload has answered, every later request is under the new version.
      const last = answers.slice(-8).map(({ body }) => (body as Answer).keyVersion);
      expect(last).toEqual(new Array<number>(8).fill(2));

      const audit = service.logs().split('\n').filter((line) => line.includes('"audit":true') && line.includes('"keyring-reload"'));
      expect(audit).toHaveLength(1);
      expect(audit[0]).toContain('"outcome":"success"');
    } finally {
      await service.close();
    }
  });

  it('refuses the reload without the admin role, and audits the refusal', async () => {
    const service = await startTestService();
    try {
      const refused = await service.call('POST', '/v1/admin/keyring/reload', { apiKey: service.keys.pseudonymize });
      expect(refused.status).toBe(403);
      const audit = service.logs().split('\n').filter((line) => line.includes('"audit":true') && line.includes('"keyring-reload"'));
      expect(audit).toHaveLength(1);
      expect(audit[0]).toContain('"outcome":"denied"');
    } finally {
      await service.close();
    }
  });
});

describe('SIGHUP', () => {
  it('makes a running server process switch to the new version at once', async () => {
    const dataDir = join(work, 'sighup');
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const env = { PSEUDO_DATA_DIR: dataDir, PSEUDO_PORT: String(port), PSEUDO_POLICY_FILE: 'test/fixtures/policies.json', PSEUDO_KEYRING_REFRESH_SECONDS: '3600' };
    // One process (node, not the tsx wrapper) so that the signal reaches the server itself.
    const server = startProcess('node', ['--import', 'tsx', 'api/main.ts'], env);
    try {
      await waitFor(async () => (await fetch(`${url}/healthz`).catch(() => undefined))?.ok === true, 'the server');
      const apiKey = readFileSync(join(dataDir, 'bootstrap-api-key'), 'utf8').trim();
      const version = async () => ((await call(url, 'POST', '/v1/pseudonymize', { apiKey, body: { context: 'vin', values: ['1HGCM82633A004352'] } })).json as Answer).keyVersion;
      expect(await version()).toBe(1);
      await keyringManagerFor(testConfig(dataDir).keyring).rotate();
      expect(await version()).toBe(1);
      server.child.kill('SIGHUP');
      await waitFor(async () => (await version()) === 2, 'the reload after SIGHUP');
      expect(await version()).toBe(2);
    } finally {
      await server.stop();
    }
  });
});
