/**
 * `npm run keys` rotation and safe shredding, as a process on the local keyring: rotate says when running servers
 * switch; destroy asks for confirmation (or --yes; refused with exit 2 where nobody can be asked), and refuses while a
 * registered table may still hold the version by the key inventory the re-keying job writes, naming the tables;
 * --force destroys anyway and is audited as forced; without a registry it refuses (exit 2) unless --no-registry, audited.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';

interface Run {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

interface Listing {
  versions: { version: number; state: string }[];
  takesEffect?: string;
  forced?: { table: string; reason: string }[];
}

const work = mkdtempSync(join(tmpdir(), 'keys-cli-'));
let folder: string;
let folders = 0;

beforeEach(() => {
  folder = join(work, `case-${++folders}`);
  mkdirSync(folder);
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

function keys(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    // stdin is a pipe here, not a terminal: nobody can be asked to confirm.
    execFile('node_modules/.bin/tsx', ['api/cli.ts', 'keys', ...args], { env: { ...process.env, PSEUDO_DATA_DIR: join(folder, 'data'), ...env } }, (error, stdout, stderr) => {
      resolve({ status: error ? Number(error.code) : 0, stdout, stderr });
    });
  });
}

/** Version 1 decrypt-only, version 2 active. */
async function rotatedKeyring(): Promise<void> {
  expect((await keys(['create'])).status).toBe(0);
  expect((await keys(['rotate'])).status).toBe(0);
}

const states = async () => (JSON.parse((await keys(['list'])).stdout) as Listing).versions.map((v) => v.state);

/** A registry of two tables (only its names are read by destroy) and, when given, the key inventory beside it. */
function registry(inventory?: Record<string, Record<string, number[]>>, fields: Record<string, unknown> = {}, recordedAt = new Date().toISOString()): string {
  const file = join(folder, 'registry.json');
  writeFileSync(
    file,
    JSON.stringify({
      catalog: { type: 'jdbc', name: 'local', uri: join(folder, 'catalog.db'), warehouse: join(folder, 'warehouse') },
      tables: [
        { name: 'local.crm.customers', columns: { email: 'email' } },
        { name: 'local.fleet.vehicles', columns: { vin: 'vin' } },
      ],
      ...fields,
    }),
  );
  if (inventory) {
    const tables = Object.fromEntries(
      Object.entries(inventory).map(([table, columns]) => [
        table,
        {
          columns: Object.fromEntries(Object.entries(columns).map(([column, keyVersions]) => [column, { context: column, keyVersions }])),
          snapshotId: '9130679734744880546',
          recordedAt,
        },
      ]),
    );
    writeFileSync(join(folder, typeof fields.keyInventory === 'string' ? fields.keyInventory : 'key-inventory.json'), JSON.stringify({ inventoryVersion: 1, tables }));
  }
  return file;
}

describe('keys rotate', () => {
  it('says on stdout, in one line, when running servers and Lambda instances switch, and how to switch now', async () => {
    expect((await keys(['create'])).status).toBe(0);
    const rotated = await keys(['rotate'], { PSEUDO_KEYRING_REFRESH_SECONDS: '120' });
    expect(rotated.status).toBe(0);
    const { takesEffect, versions } = JSON.parse(rotated.stdout) as Listing;
    expect(versions).toMatchObject([{ version: 1, state: 'decrypt-only' }, { version: 2, state: 'active' }]);
    expect(takesEffect).toContain('switch to version 2 within 120 s');
    expect(takesEffect).toContain('SIGHUP');
    expect(takesEffect).toContain('/v1/admin/keyring/reload');
    expect(takesEffect).not.toContain('\n');
  });
});

describe('keys destroy', () => {
  it('refuses with exit 2 and one line when not on a terminal and --yes is missing; nothing is destroyed', async () => {
    await rotatedKeyring();
    const refused = await keys(['destroy', '--version', '1', '--no-registry']);
    expect(refused.status).toBe(2);
    expect(refused.stderr.trim().split('\n')).toEqual(['keys destroy needs --yes when not run on a terminal: nothing was destroyed']);
    expect(await states()).toEqual(['decrypt-only', 'active']);
  });

  it('refuses while a registered table has no key inventory or still holds the version, naming the tables', async () => {
    await rotatedKeyring();
    const file = registry({ 'local.crm.customers': { email: [1, 2] } });
    const refused = await keys(['destroy', '--version', '1', '--yes'], { PSEUDO_ERASURE_REGISTRY_FILE: file });
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain('local.crm.customers: holds version 1 in email');
    expect(refused.stderr).toContain('local.fleet.vehicles: no key inventory (run the re-key job)');
    expect(await states()).toEqual(['decrypt-only', 'active']);
  });

  it('destroys once the inventory shows the version gone from every registered table', async () => {
    await rotatedKeyring();
    const file = registry({ 'local.crm.customers': { email: [2] }, 'local.fleet.vehicles': { vin: [] } });
    const destroyed = await keys(['destroy', '--version', '1', '--yes'], { PSEUDO_ERASURE_REGISTRY_FILE: file });
    expect(destroyed.stderr).not.toContain('forced');
    expect(destroyed.status).toBe(0);
    expect((JSON.parse(destroyed.stdout) as Listing).forced).toBeUndefined();
    expect(await states()).toEqual(['destroyed', 'active']);
  });

  it('refuses on an inventory recorded before the version stopped being issued: it cannot know what was written after', async () => {
    await rotatedKeyring();
    // Recorded when version 1 was still active: the version-1 rows written after the recording are unknown to it.
    const file = registry({ 'local.crm.customers': { email: [] }, 'local.fleet.vehicles': { vin: [] } }, {}, '2020-01-01T00:00:00Z');
    const refused = await keys(['destroy', '--version', '1', '--yes'], { PSEUDO_ERASURE_REGISTRY_FILE: file });
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain('local.crm.customers: key inventory recorded before version 1 stopped being issued (run the re-key job again)');
    expect(await states()).toEqual(['decrypt-only', 'active']);
  });

  it('reads the registry from --registry and the inventory from its keyInventory field, relative to the registry', async () => {
    await rotatedKeyring();
    mkdirSync(join(folder, 'rekey'));
    const file = registry({ 'local.crm.customers': { email: [1, 2] }, 'local.fleet.vehicles': { vin: [2] } }, { keyInventory: 'rekey/inventory.json' });
    const refused = await keys(['destroy', '--version', '1', '--yes', '--registry', file]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain('local.crm.customers: holds version 1 in email');
    expect(refused.stderr).not.toContain('local.fleet.vehicles');
  });

  it('refuses an inventory that breaks its contract, saying where, and destroys nothing', async () => {
    await rotatedKeyring();
    const file = registry();
    writeFileSync(join(folder, 'key-inventory.json'), JSON.stringify({ inventoryVersion: 1, tables: { 'local.crm.customers': { columns: { email: { context: 'email', keyVersions: ['1'] } }, snapshotId: null, recordedAt: '2026-11-26T04:10:00Z' } } }));
    const refused = await keys(['destroy', '--version', '1', '--yes', '--registry', file]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain('key-inventory: $.tables.local.crm.customers.columns.email.keyVersions[0]: has the wrong type');
    expect(await states()).toEqual(['decrypt-only', 'active']);
  });

  it('with --force destroys anyway, says which tables it overrode, and writes an audit entry marked forced', async () => {
    await rotatedKeyring();
    const file = registry({ 'local.crm.customers': { email: [1, 2] } });
    const forced = await keys(['destroy', '--version', '1', '--yes', '--force'], { PSEUDO_ERASURE_REGISTRY_FILE: file });
    expect(forced.status).toBe(0);
    expect((JSON.parse(forced.stdout) as Listing).forced?.map((f) => f.table)).toEqual(['local.crm.customers', 'local.fleet.vehicles']);
    const audit = forced.stderr
      .split('\n')
      .filter((line) => line.includes('"audit":true'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ action: 'key-destroy', outcome: 'success', reason: 'forced', keyVersion: 1, tables: ['local.crm.customers', 'local.fleet.vehicles'] });
    expect(await states()).toEqual(['destroyed', 'active']);
  });

  it('refuses with exit 2 and one line naming --registry FILE and PSEUDO_ERASURE_REGISTRY_FILE when no registry is given; nothing is destroyed', async () => {
    await rotatedKeyring();
    const refused = await keys(['destroy', '--version', '1', '--yes']);
    expect(refused.status).toBe(2);
    const lines = refused.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('--registry FILE');
    expect(lines[0]).toContain('PSEUDO_ERASURE_REGISTRY_FILE');
    expect(lines[0]).toContain('--no-registry');
    expect(refused.stdout).toBe('');
    expect(await states()).toEqual(['decrypt-only', 'active']);
    // Both at once is a usage error.
    expect((await keys(['destroy', '--version', '1', '--yes', '--no-registry', '--registry', registry()])).status).toBe(2);
    expect(await states()).toEqual(['decrypt-only', 'active']);
  });

  it('with --no-registry destroys unchecked, audited as forced-no-registry, says when servers drop the version, and a second destroy says it was done', async () => {
    await rotatedKeyring();
    const destroyed = await keys(['destroy', '--version', '1', '--yes', '--no-registry'], { PSEUDO_KEYRING_REFRESH_SECONDS: '120' });
    expect(destroyed.status).toBe(0);
    const summary = JSON.parse(destroyed.stdout) as Listing & { tablesChecked?: string };
    expect(summary.tablesChecked).toBe('none (--no-registry)');
    expect(summary.takesEffect).toContain('keep version 1 until their keyring refresh, within 120 s');
    expect(summary.takesEffect).toContain('SIGHUP');
    expect(summary.takesEffect).toContain('/v1/admin/keyring/reload');
    const audit = destroyed.stderr.split('\n').filter((line) => line.includes('"audit":true'));
    expect(audit).toHaveLength(1);
    expect(JSON.parse(audit[0]!)).toMatchObject({ action: 'key-destroy', outcome: 'success', reason: 'forced-no-registry', keyVersion: 1 });
    expect(await states()).toEqual(['destroyed', 'active']);

    const again = await keys(['destroy', '--version', '1', '--yes']);
    expect(again.status).toBe(0);
    expect((JSON.parse(again.stdout) as { note?: string }).note).toBe('key version 1 was destroyed already: nothing was done');
    expect(again.stderr).not.toContain('"audit":true');
  });

  it('still refuses the active version first, whatever the flags', async () => {
    await rotatedKeyring();
    const refused = await keys(['destroy', '--version', '2', '--yes', '--force']);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain('rotate first');
  });
});
