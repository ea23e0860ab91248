/**
 * The table registry: which Iceberg tables hold which contexts in which columns. Read and validated once at
 * start-up: every context must be in the policy file, and for the local JDBC catalog (SQLite) every table
 * must exist with its columns as strings: for the local JDBC catalog (SQLite) read from the catalog and the
 * table's current metadata, for the Glue catalog from GetTable (the service needs glue:GetTable).
 *
 *   { "catalog": { "name": "local", "type": "jdbc", "uri": "data/iceberg/catalog.db", "warehouse": "data/iceberg/warehouse" },
 *     "tables": [ { "name": "local.crm.customers", "columns": { "email": "email", "customer_id": "customer_id" } } ],
 *     "keyInventory": "key-inventory.json" }
 *
 * The file's form is a contract shared with the Python jobs (contracts/table-registry.schema.json): the re-keying and
 * maintenance jobs read the same file, and the maintenance job's `maintenance` sections, global and per table.
 *
 * `keyInventory` (optional) is where the re-keying job records which key versions each table still holds
 * (contracts/key-inventory.schema.json), read by `keys destroy`: a path relative to the registry file, or an s3:// URI;
 * default key-inventory.json beside the registry.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { openSqlite } from './_sqlite.ts';
import { EntityNotFoundException, GetTableCommand, GlueClient } from '@aws-sdk/client-glue';
import { checkContract, type TableRegistryDocument } from '../contracts/contracts.ts';
import { ConfigError } from '../errors.ts';
import type { PolicySet } from '../policy/policy.ts';

/** The default key inventory's name, beside the registry file. */
export const DEFAULT_KEY_INVENTORY = 'key-inventory.json';

/** The registry's catalog with its name filled in (`local` for jdbc, `glue` for glue when absent, as the jobs read it). */
export type CatalogSettings =
  | { readonly name: string; readonly type: 'jdbc'; readonly uri: string; readonly warehouse: string }
  | { readonly name: string; readonly type: 'glue'; readonly warehouse: string };

export interface RegisteredTable {
  readonly name: string;
  /** column -> context */
  readonly columns: Readonly<Record<string, string>>;
}

/** Where a registry's key inventory is: an s3:// URI as written, a path resolved against the registry file's folder. */
export function keyInventoryLocation(registryFile: string, keyInventory: string | undefined): string {
  const location = keyInventory ?? DEFAULT_KEY_INVENTORY;
  return location.startsWith('s3://') ? location : resolve(dirname(resolve(registryFile)), location);
}

/**
 * The registry file checked against contracts/table-registry.schema.json, the contract the Python re-keying and
 * maintenance jobs check it against too. The error names the field and the rule, never a value.
 */
function readRegistry(file: string, unreadable: string): TableRegistryDocument {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    throw new ConfigError(unreadable);
  }
  const checked = checkContract('table-registry', raw);
  if (!checked.ok) throw new ConfigError(`erasure registry ${checked.error.path}: ${checked.error.reason}`);
  return checked.value;
}

/**
 * The registered tables and the key inventory's location, from the registry file alone (no catalog, no policy file):
 * what `keys destroy` checks, on a machine that may not reach the catalog.
 */
export function readRegistryTables(file: string): { readonly tables: readonly RegisteredTable[]; readonly keyInventory: string } {
  const registry = readRegistry(file, `the table registry: cannot read ${file} as JSON`);
  return { tables: registry.tables, keyInventory: keyInventoryLocation(file, registry.keyInventory) };
}

export class TableRegistry {
  constructor(
    readonly catalog: CatalogSettings,
    readonly tables: readonly RegisteredTable[],
  ) {}

  /** Tables that hold any of these contexts. */
  tablesFor(contexts: Iterable<string>): RegisteredTable[] {
    const wanted = new Set(contexts);
    return this.tables.filter((table) => Object.values(table.columns).some((context) => wanted.has(context)));
  }

  /** `sharedCatalogOnly`: refuse a jdbc catalog (a local SQLite file) where instances do not share a disk (Lambda). */
  static async load(file: string, policies: PolicySet, aws: { region: string; endpoint: string | undefined } = { region: 'eu-west-1', endpoint: undefined }, options: { sharedCatalogOnly?: boolean } = {}): Promise<TableRegistry> {
    const { catalog, tables } = readRegistry(file, `PSEUDO_ERASURE_REGISTRY_FILE: cannot read ${file} as JSON`);
    const settings: CatalogSettings =
      catalog.type === 'jdbc' ? { ...catalog, name: catalog.name ?? 'local', uri: resolve(catalog.uri), warehouse: resolve(catalog.warehouse) } : { ...catalog, name: catalog.name ?? 'glue' };
    for (const table of tables) {
      if (!table.name.startsWith(`${settings.name}.`)) throw new ConfigError(`erasure registry: ${table.name} is not in catalog ${settings.name}`);
      for (const [column, context] of Object.entries(table.columns)) {
        if (!policies.isKnown(context)) throw new ConfigError(`erasure registry: ${table.name}.${column} names context ${context}, which the policy file does not configure`);
      }
    }
    if (settings.type === 'jdbc' && options.sharedCatalogOnly) throw new ConfigError('PSEUDO_ERASURE_REGISTRY_FILE: a jdbc catalog is a local SQLite file that other instances never see; register Glue tables here');
    if (settings.type === 'jdbc') checkJdbcCatalog(settings.uri, settings.name, tables);
    else await checkGlueCatalog(aws, tables);
    return new TableRegistry(settings, tables);
  }
}

/** Each table exists in Glue, and its columns (as Iceberg's GlueCatalog lists them) include ours as strings. */
async function checkGlueCatalog(aws: { region: string; endpoint: string | undefined }, tables: readonly RegisteredTable[]): Promise<void> {
  const glue = new GlueClient({ region: aws.region, ...(aws.endpoint ? { endpoint: aws.endpoint } : {}), maxAttempts: 5 });
  for (const table of tables) {
    const [, database, name] = table.name.split('.') as [string, string, string];
    let columns: { Name?: string; Type?: string }[];
    try {
      columns = (await glue.send(new GetTableCommand({ DatabaseName: database, Name: name }))).Table?.StorageDescriptor?.Columns ?? [];
    } catch (error) {
      if (error instanceof EntityNotFoundException) throw new ConfigError(`erasure registry: table ${table.name} is not in the Glue catalog`);
      throw new ConfigError(`erasure registry: cannot read table ${table.name} from Glue (${error instanceof Error ? error.name : 'error'})`);
    }
    for (const column of Object.keys(table.columns)) {
      const field = columns.find((c) => c.Name === column);
      if (!field) throw new ConfigError(`erasure registry: table ${table.name} has no column ${column}`);
      if (field.Type !== 'string') throw new ConfigError(`erasure registry: ${table.name}.${column} is not a string column`);
    }
  }
}

/** Each table exists in the SQLite catalog, and its current schema has the columns, as strings. */
function checkJdbcCatalog(uri: string, catalogName: string, tables: readonly RegisteredTable[]): void {
  if (!existsSync(uri)) throw new ConfigError(`erasure registry: the catalog database ${uri} does not exist`);
  const db = openSqlite(uri, { readOnly: true, fileMustExist: true });
  try {
    for (const table of tables) {
      const [, namespace, name] = table.name.split('.') as [string, string, string];
      const row = db.get('SELECT metadata_location FROM iceberg_tables WHERE catalog_name = ? AND table_namespace = ? AND table_name = ?', [catalogName, namespace, name]);
      if (!row) throw new ConfigError(`erasure registry: table ${table.name} is not in the catalog`);
      const metadataLocation = row.metadata_location;
      if (typeof metadataLocation !== 'string') throw new ConfigError(`erasure registry: table ${table.name} has no metadata location in the catalog`);
      const location = metadataLocation.replace(/^file:(\/\/)?/, '');
      const metadata = JSON.parse(readFileSync(location, 'utf8')) as { 'current-schema-id': number; schemas: { 'schema-id': number; fields: { name: string; type: unknown }[] }[] };
      const schema = metadata.schemas.find((s) => s['schema-id'] === metadata['current-schema-id']);
      for (const column of Object.keys(table.columns)) {
        const field = schema?.fields.find((f) => f.name === column);
        if (!field) throw new ConfigError(`erasure registry: table ${table.name} has no column ${column}`);
        if (field.type !== 'string') throw new ConfigError(`erasure registry: ${table.name}.${column} is not a string column`);
      }
    }
  } finally {
    db.close();
  }
}
