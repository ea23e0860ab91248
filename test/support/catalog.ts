/**
 * A local Iceberg JDBC catalog (SQLite) with table metadata files, in the layout Iceberg's JdbcCatalog
 * writes (table `iceberg_tables`, a metadata.json per table), for tests of the registry check that need no
 * Spark. The erasure end-to-end tests use tables Spark wrote.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sqlite from 'node-sqlite3-wasm';

export interface CatalogTable {
  readonly namespace: string;
  readonly name: string;
  readonly columns: Readonly<Record<string, string>>;
}

export function writeLocalCatalog(folder: string, tables: readonly CatalogTable[]): { uri: string; warehouse: string } {
  const uri = join(folder, 'catalog.db');
  const warehouse = join(folder, 'warehouse');
  const db = new sqlite.Database(uri);
  db.exec(
    'CREATE TABLE iceberg_tables (catalog_name VARCHAR(255) NOT NULL, table_namespace VARCHAR(255) NOT NULL, table_name VARCHAR(255) NOT NULL, metadata_location VARCHAR(1000), previous_metadata_location VARCHAR(1000), iceberg_type VARCHAR(5), PRIMARY KEY (catalog_name, table_namespace, table_name))',
  );
  for (const table of tables) {
    const metadataDir = join(warehouse, table.namespace, table.name, 'metadata');
    mkdirSync(metadataDir, { recursive: true });
    const metadataFile = join(metadataDir, '00000-test.metadata.json');
    const fields = Object.entries(table.columns).map(([name, type], i) => ({ id: i + 1, name, required: false, type }));
    writeFileSync(metadataFile, JSON.stringify({ 'format-version': 2, 'current-schema-id': 0, schemas: [{ type: 'struct', 'schema-id': 0, fields }] }));
    db.run('INSERT INTO iceberg_tables VALUES (?, ?, ?, ?, NULL, ?)', ['local', table.namespace, table.name, `file:${metadataFile}`, 'TABLE']);
  }
  db.close();
  return { uri, warehouse };
}

/** A registered table: its catalog columns (Iceberg types) and which of them hold which context. */
export interface RegisteredTestTable extends CatalogTable {
  readonly contexts: Readonly<Record<string, string>>;
}

/** A local catalog with these tables and an erasure table registry naming them (PSEUDO_ERASURE_REGISTRY_FILE). */
export function writeTestRegistry(tables: readonly RegisteredTestTable[]): string {
  const folder = mkdtempSync(join(tmpdir(), 'registry-'));
  const catalog = writeLocalCatalog(folder, tables);
  const file = join(folder, 'registry.json');
  const registered = tables.map((table) => ({ name: `local.${table.namespace}.${table.name}`, columns: table.contexts }));
  writeFileSync(file, JSON.stringify({ catalog: { type: 'jdbc', name: 'local', ...catalog }, tables: registered }));
  return file;
}
