/** The table registry is checked at start-up: contexts against the policy, tables and columns against the catalog. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateDatabaseCommand, CreateTableCommand, GlueClient } from '@aws-sdk/client-glue';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TableRegistry } from '../../api/erasure/registry.ts';
import { writeLocalCatalog } from '../support/catalog.ts';
import { TEST_POLICIES } from '../support/engine.ts';
import { startMoto, TEST_REGION, type Moto } from '../support/moto.ts';

function registry(content: unknown): string {
  const file = join(mkdtempSync(join(tmpdir(), 'registry-')), 'registry.json');
  writeFileSync(file, JSON.stringify(content));
  return file;
}

describe('table registry on the local JDBC catalog', () => {
  const folder = mkdtempSync(join(tmpdir(), 'catalog-'));
  const catalog = { type: 'jdbc', ...writeLocalCatalog(folder, [{ namespace: 'crm', name: 'customers', columns: { id: 'long', email: 'string' } }]) };

  it('loads when every table, column and context is there', async () => {
    const loaded = await TableRegistry.load(registry({ catalog, tables: [{ name: 'local.crm.customers', columns: { email: 'email' } }] }), TEST_POLICIES);
    expect(loaded.tablesFor(['email']).map((t) => t.name)).toEqual(['local.crm.customers']);
    expect(loaded.tablesFor(['vin'])).toEqual([]);
  });

  it('takes the maintenance job\'s sections, global and per table, as the job reads the same file', async () => {
    const table = { name: 'local.crm.customers', columns: { email: 'email' }, maintenance: { strategy: 'sort' } };
    const loaded = await TableRegistry.load(registry({ catalog, tables: [table], maintenance: { snapshotRetentionHours: 24 } }), TEST_POLICIES);
    expect(loaded.tablesFor(['email']).map((t) => t.name)).toEqual(['local.crm.customers']);
  });

  it.each([
    [{ name: 'local.crm.nobody', columns: { email: 'email' } }, 'erasure registry: table local.crm.nobody is not in the catalog'],
    [{ name: 'local.crm.customers', columns: { phone: 'email' } }, 'erasure registry: table local.crm.customers has no column phone'],
    [{ name: 'local.crm.customers', columns: { id: 'email' } }, 'erasure registry: local.crm.customers.id is not a string column'],
    [{ name: 'local.crm.customers', columns: { email: 'shoe_size' } }, 'names context shoe_size, which the policy file does not configure'],
    [{ name: 'glue.crm.customers', columns: { email: 'email' } }, 'is not in catalog local'],
    [{ name: 'customers', columns: { email: 'email' } }, 'erasure registry $.tables[0].name: does not have the required form'],
  ])('refuses a registry that cannot work (%#)', async (table, message) => {
    await expect(TableRegistry.load(registry({ catalog, tables: [table] }), TEST_POLICIES)).rejects.toThrow(message);
  });

  it('refuses a catalog database that is not there, and an unreadable file', async () => {
    await expect(TableRegistry.load(registry({ catalog: { ...catalog, uri: join(folder, 'missing.db') }, tables: [{ name: 'local.crm.customers', columns: { email: 'email' } }] }), TEST_POLICIES)).rejects.toThrow('does not exist');
    await expect(TableRegistry.load(join(folder, 'nope.json'), TEST_POLICIES)).rejects.toThrow('PSEUDO_ERASURE_REGISTRY_FILE: cannot read');
  });
});

describe('table registry on the Glue catalog (moto)', () => {
  let moto: Moto;
  beforeAll(async () => {
    moto = await startMoto();
    const glue = new GlueClient({ region: TEST_REGION, endpoint: moto.endpoint });
    await glue.send(new CreateDatabaseCommand({ DatabaseInput: { Name: 'crm' } }));
    await glue.send(
      new CreateTableCommand({
        DatabaseName: 'crm',
        TableInput: { Name: 'customers', Parameters: { table_type: 'ICEBERG' }, StorageDescriptor: { Columns: [{ Name: 'id', Type: 'bigint' }, { Name: 'email', Type: 'string' }] } },
      }),
    );
  }, 60_000);
  afterAll(async () => moto.stop());

  const glueCatalog = { type: 'glue', name: 'glue', warehouse: 's3://lake/warehouse' };
  const aws = () => ({ region: TEST_REGION, endpoint: moto.endpoint });

  it('checks tables and columns with GetTable', async () => {
    const loaded = await TableRegistry.load(registry({ catalog: glueCatalog, tables: [{ name: 'glue.crm.customers', columns: { email: 'email' } }] }), TEST_POLICIES, aws());
    expect(loaded.tables).toHaveLength(1);
    await expect(TableRegistry.load(registry({ catalog: glueCatalog, tables: [{ name: 'glue.crm.gone', columns: { email: 'email' } }] }), TEST_POLICIES, aws())).rejects.toThrow(
      'erasure registry: table glue.crm.gone is not in the Glue catalog',
    );
    await expect(TableRegistry.load(registry({ catalog: glueCatalog, tables: [{ name: 'glue.crm.customers', columns: { id: 'email' } }] }), TEST_POLICIES, aws())).rejects.toThrow(
      'glue.crm.customers.id is not a string column',
    );
  });
});
