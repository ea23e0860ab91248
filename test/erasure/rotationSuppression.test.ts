/**
 * Erased stays erased across key rotation and shredding, through the real server over HTTP and the real `keys` CLI:
 * a subject filed under version 1, then `keys rotate`, then `keys destroy --version 1`, is still withheld by
 * pseudonymize (null and its index in `erased`) and by reidentify of its version-2 pseudonym, in an AES-SIV context
 * and in an FPE one: destroy first adds each suppressed subject's pseudonym under the active version to the ledger.
 * A keyed-hash subject cannot be re-derived, so destroy refuses (exit 1, a count and the context, never a subject)
 * until it is filed again or --force is given (audited). Coverage is idempotent: a second pass adds nothing and the
 * audit chain verifies. The erasure worker's rounds cover the same way, without the CLI.
 *
 * Which version-2 pseudonym can a test obtain? None from the service once the subject is filed: pseudonymize,
 * rewrap and allVersions withhold it, and before the rotation version 2 does not exist. The test computes it with the
 * keyring the CLI rotated, as a writer holding the keys (or a table row written under version 2) would present it.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SuppressionCoverage } from '../../api/erasure/coverage.ts';
import { verifyAuditChain } from '../../api/erasure/ledger.ts';
import { TableRegistry } from '../../api/erasure/registry.ts';
import { ErasureRequests } from '../../api/erasure/requests.ts';
import type { ErasureOrder, ErasureRunner, RunOutcome } from '../../api/erasure/runner.ts';
import { SqliteErasureLedger } from '../../api/erasure/sqliteLedger.ts';
import { ErasureSuppression } from '../../api/erasure/suppression.ts';
import { ErasureWorker } from '../../api/erasure/worker.ts';
import { PseudonymEngine } from '../../api/engine/engine.ts';
import { keyringManagerFor } from '../../api/keyring/fromConfig.ts';
import { Keyring } from '../../api/keyring/keyring.ts';
import { createLogger } from '../../api/observability/logger.ts';
import { writeTestRegistry } from '../support/catalog.ts';
import { engineOf, keyringOf, TEST_POLICIES } from '../support/engine.ts';
import { startTestService, type TestService } from '../support/service.ts';

const JANE = 'sentinel.jane@example.com';
const ACCOUNT = '40128888881881';
const DEVICE = 'SENTINEL-DEVICE-0042';

interface Run {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

interface PseudonymizeAnswer {
  pseudonyms: (string | null)[];
  keyVersion: number;
  erased?: number[];
}

interface ReidentifyAnswer {
  values: (string | null)[];
  errors: { index: number; reason: string }[];
}

let service: TestService | undefined;
afterEach(async () => {
  await service?.close();
  service = undefined;
});

async function started(): Promise<{ service: TestService; officer: string; admin: string }> {
  const registry = writeTestRegistry([
    { namespace: 'crm', name: 'customers', columns: { email: 'string', account: 'string', device: 'string' }, contexts: { email: 'email', account: 'account_number', device: 'device_id' } },
  ]);
  // Suppression read from the ledger at every request: the CLI's additions are seen at once.
  service = await startTestService({ PSEUDO_ERASURE_REGISTRY_FILE: registry, PSEUDO_ERASURE_CACHE_SECONDS: '0', PSEUDO_KEYRING_REFRESH_SECONDS: '3600' });
  return { service, officer: await service.createKey('officer', ['privacy-officer']), admin: await service.createKey('operator', ['admin']) };
}

/** The real CLI on the service's data folder (its keyring and ledger). No registry: these tests are about suppressions, not tables. */
function keys(running: TestService, args: readonly string[]): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env, PSEUDO_DATA_DIR: running.dataDir, PSEUDO_POLICY_FILE: 'test/fixtures/policies.json' };
  delete env.PSEUDO_ERASURE_REGISTRY_FILE;
  return new Promise((resolve) => {
    execFile('node_modules/.bin/tsx', ['api/cli.ts', 'keys', ...args], { env }, (error, stdout, stderr) => {
      resolve({ status: error ? Number(error.code) : 0, stdout, stderr });
    });
  });
}

async function file(running: TestService, officer: string, reference: string, subjects: { context: string; value: string }[]): Promise<void> {
  const filed = await running.call('POST', '/v1/erasure-requests', { apiKey: officer, body: { reference, reason: 'gdpr-art17-1a', subjects } });
  expect(filed.status).toBe(202);
}

async function reload(running: TestService, admin: string, version: number): Promise<void> {
  const reloaded = await running.call('POST', '/v1/admin/keyring/reload', { apiKey: admin });
  expect(reloaded.json).toEqual({ keyVersion: version });
}

/** The subject's pseudonym under the active version of the keyring on disk, computed with its keys (see the header). */
async function pseudonymOnDisk(running: TestService, context: string, value: string): Promise<{ pseudonym: string; keyVersion: number }> {
  const keyring = new Keyring();
  try {
    keyring.apply(await keyringManagerFor(running.config.keyring).load());
    const answer = new PseudonymEngine(keyring, TEST_POLICIES, { cacheEntries: 0, maxValueBytes: 1024 }).pseudonymize(context, [value], { deterministic: true });
    return { pseudonym: answer.pseudonyms[0]!, keyVersion: answer.keyVersion };
  } finally {
    keyring.close();
  }
}

async function auditChain(running: TestService): Promise<{ entries: number; valid: boolean; actions: string[]; text: string }> {
  const { ledger } = SqliteErasureLedger.open(running.config.erasure.ledger.store === 'sqlite' ? running.config.erasure.ledger.file : '', running.config.erasure.ledgerHeadFile, { forReading: true });
  try {
    const entries = await ledger.auditEntries();
    return { ...verifyAuditChain(entries), actions: entries.map((e) => e.action), text: JSON.stringify(entries) };
  } finally {
    await ledger.close();
  }
}

describe('suppressions across rotation and keys destroy (server over HTTP, real CLI)', () => {
  it('keeps AES-SIV and FPE subjects filed under version 1 withheld after version 1 is destroyed; refuses while a keyed-hash subject would be left', async () => {
    const { service: running, officer, admin } = await started();
    const pseudonymize = (context: string, value: string) => running.call('POST', '/v1/pseudonymize', { apiKey: running.keys.pseudonymize, body: { context, values: [value] } });
    const reidentify = (context: string, pseudonym: string, keyVersion?: number) =>
      running.call('POST', '/v1/reidentify', { apiKey: running.keys.reidentify, body: { context, pseudonyms: [pseudonym], ...(keyVersion ? { keyVersion } : {}) } });

    await file(running, officer, 'DSR-1', [
      { context: 'email', value: JANE },
      { context: 'account_number', value: ACCOUNT },
    ]);
    await file(running, officer, 'DSR-2', [{ context: 'device_id', value: DEVICE }]);
    expect((await keys(running, ['rotate'])).status).toBe(0);
    await reload(running, admin, 2);
    const janeV2 = await pseudonymOnDisk(running, 'email', JANE);
    const accountV2 = await pseudonymOnDisk(running, 'account_number', ACCOUNT);
    expect(janeV2).toMatchObject({ keyVersion: 2, pseudonym: expect.stringMatching(/^s2\./) as unknown });
    expect(accountV2.keyVersion).toBe(2);

    // The keyed-hash subject has a token under version 1 only: destroy refuses, naming a count and the context.
    const refused = await keys(running, ['destroy', '--version', '1', '--yes', '--no-registry']);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain('key version 1 is the last readable version of 1 suppression(s) in context device_id');
    for (const secret of [JANE, ACCOUNT, DEVICE, janeV2.pseudonym, accountV2.pseudonym]) expect(refused.stdout + refused.stderr).not.toContain(secret);
    expect((JSON.parse((await keys(running, ['list'])).stdout) as { versions: { state: string }[] }).versions.map((v) => v.state)).toEqual(['decrypt-only', 'active']);
    // ...but the AES-SIV and FPE subjects were covered already, before anything was destroyed.
    const afterRefusal = await auditChain(running);
    expect(afterRefusal.actions.filter((a) => a === 'erasure.suppression-extended')).toHaveLength(1);

    // The documented remedy: file the keyed-hash subject again, under the versions readable now.
    await file(running, officer, 'DSR-3', [{ context: 'device_id', value: DEVICE }]);
    const destroyed = await keys(running, ['destroy', '--version', '1', '--yes', '--no-registry']);
    expect(destroyed.status).toBe(0);
    const summary = JSON.parse(destroyed.stdout) as { versions: { state: string }[]; suppressions: { pseudonymsAdded: number } };
    expect(summary.versions.map((v) => v.state)).toEqual(['destroyed', 'active']);
    // The second pass adds nothing to what the first covered; only DSR-2's filing of the device gets DSR-3's version-2 token (one subject).
    expect(summary.suppressions).toEqual({ keyVersion: 2, requests: 1, subjects: 1, pseudonymsAdded: 1 });
    for (const secret of [JANE, ACCOUNT, DEVICE, janeV2.pseudonym, accountV2.pseudonym]) expect(destroyed.stdout + destroyed.stderr).not.toContain(secret);
    await reload(running, admin, 2);

    // Erased stays erased: no pseudonym handed out, and the version-2 pseudonyms are not re-identified.
    for (const [context, value] of [['email', JANE], ['account_number', ACCOUNT], ['device_id', DEVICE]] as const) {
      const answer = await pseudonymize(context, value);
      expect(answer.status).toBe(200);
      expect(answer.json).toMatchObject({ pseudonyms: [null], keyVersion: 2, erased: [0] });
    }
    expect((await reidentify('email', janeV2.pseudonym)).json as ReidentifyAnswer).toEqual({ values: [null], errors: [{ index: 0, reason: 'erased' }] });
    expect((await reidentify('account_number', accountV2.pseudonym, 2)).json as ReidentifyAnswer).toEqual({ values: [null], errors: [{ index: 0, reason: 'erased' }] });
    // Another subject is answered as before.
    expect(((await pseudonymize('email', 'sentinel.kept@example.com')).json as PseudonymizeAnswer).pseudonyms[0]).toMatch(/^s2\./);

    const chain = await auditChain(running);
    expect(chain).toMatchObject({ valid: true });
    expect(chain.actions.filter((a) => a === 'erasure.suppression-extended')).toHaveLength(2);
    for (const secret of [JANE, ACCOUNT, DEVICE, janeV2.pseudonym, accountV2.pseudonym]) expect(chain.text).not.toContain(secret);
    expect(running.logs()).not.toContain(JANE);
  });

  it('destroys past a keyed-hash suppression with --force, audited as forced with the count and the context', async () => {
    const { service: running, officer } = await started();
    await file(running, officer, 'DSR-1', [{ context: 'device_id', value: DEVICE }]);
    expect((await keys(running, ['rotate'])).status).toBe(0);
    const forced = await keys(running, ['destroy', '--version', '1', '--yes', '--force', '--no-registry']);
    expect(forced.status).toBe(0);
    expect((JSON.parse(forced.stdout) as { forcedSuppressions: unknown }).forcedSuppressions).toEqual({ suppressions: 1, contexts: ['device_id'] });
    const audit = forced.stderr.split('\n').filter((line) => line.includes('"audit":true'));
    expect(audit).toHaveLength(1);
    expect(JSON.parse(audit[0]!)).toMatchObject({ action: 'key-destroy', outcome: 'success', keyVersion: 1, reason: 'forced', count: 1, contexts: ['device_id'] });
    expect(forced.stdout + forced.stderr).not.toContain(DEVICE);
  });
});

describe('suppressions across rotation in the erasure worker', () => {
  /** A job that erases nothing and verifies: the worker's rounds are what is tested here. */
  class NoJob implements ErasureRunner {
    readonly description = 'no job';
    run(order: ErasureOrder): Promise<RunOutcome> {
      return Promise.reject(new Error(`not run in this test (${order.runId})`));
    }
  }

  it("covers the active version on its first round after a rotation, so destroying the old version keeps the subject withheld; a second round adds nothing", async () => {
    const ledger = new SqliteErasureLedger(join(mkdtempSync(join(tmpdir(), 'coverage-worker-')), 'ledger.db'));
    const one = new Uint8Array(64).fill(1);
    const two = new Uint8Array(64).fill(2);
    const keyring = keyringOf([{ version: 1, state: 'active', root: one }]);
    const engine = engineOf(keyring, 0);
    const suppression = new ErasureSuppression(ledger, engine, keyring, { cacheSeconds: 0 });
    const registry = new TableRegistry({ type: 'glue', name: 'glue', warehouse: 's3://lake/warehouse' }, [{ name: 'glue.crm.customers', columns: { email: 'email', account: 'account_number' } }]);
    const requests = new ErasureRequests(ledger, suppression, TEST_POLICIES, registry);
    const worker = new ErasureWorker(ledger, registry, suppression, TEST_POLICIES, new NoJob(), { maxAttempts: 2, pollSeconds: 60, orphanGraceSeconds: 0, retrySeconds: 0 }, createLogger('silent'), undefined, new SuppressionCoverage(ledger, engine, keyring, TEST_POLICIES));
    const { request } = await requests.file({ kind: 'person', id: 'olivia', name: 'olivia', roles: new Set(['privacy-officer']), contexts: undefined }, {
      reference: 'DSR-1',
      reason: 'gdpr-art17-1a',
      subjects: [
        { context: 'email', value: JANE },
        { context: 'account_number', value: ACCOUNT },
      ],
    });
    // Verified by an earlier run: the worker's rounds have nothing to claim.
    await ledger.transition(request.id, { status: 'running', attempts: 1, runId: 'run-1' }, { actor: 'service', action: 'erasure.started', requestId: request.id, outcome: 'running' });
    await ledger.transition(request.id, { status: 'verified' }, { actor: 'service', action: 'erasure.verified', requestId: request.id, outcome: 'verified' });

    keyring.apply([
      { version: 1, state: 'decrypt-only', createdAt: '2026-01-01T00:00:00.000Z', material: Uint8Array.from(one) },
      { version: 2, state: 'active', createdAt: '2026-01-02T00:00:00.000Z', material: Uint8Array.from(two) },
    ]);
    await worker.runOnce();
    const entries = await ledger.auditEntries();
    expect(entries.map((e) => e.action)).toContain('erasure.suppression-extended');
    await worker.runOnce(); // same keyring: nothing looked at, nothing written
    expect(await ledger.auditEntries()).toHaveLength(entries.length);

    keyring.apply([
      { version: 1, state: 'destroyed', createdAt: '2026-01-01T00:00:00.000Z' },
      { version: 2, state: 'active', createdAt: '2026-01-02T00:00:00.000Z', material: Uint8Array.from(two) },
    ]);
    await worker.runOnce(); // a full pass again (the keyring changed): every subject holds its version-2 pseudonym already
    expect(await ledger.auditEntries()).toHaveLength(entries.length);
    expect(verifyAuditChain(await ledger.auditEntries())).toMatchObject({ valid: true });
    for (const [context, value] of [['email', JANE], ['account_number', ACCOUNT]] as const) {
      expect(await suppression.pseudonymize(context, [value], { deterministic: true })).toMatchObject({ pseudonyms: [null], keyVersion: 2, erased: [0] });
    }
    const janeV2 = engine.pseudonymize('email', [JANE], { deterministic: true }).pseudonyms[0]!;
    expect((await suppression.reidentify('email', [janeV2])).errors).toEqual([{ index: 0, reason: 'erased' }]);
    await ledger.close();
  });
});
