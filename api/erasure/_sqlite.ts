/**
 * Opens SQLite databases through node-sqlite3-wasm, loaded on first use: the module instantiates its
 * WebAssembly at import and locates the .wasm file next to itself, so it stays outside the esbuild bundles
 * (external) and out of processes that never open a ledger (the Lambda handler, the CLI's key commands).
 */
import { createRequire } from 'node:module';
import type { Database } from 'node-sqlite3-wasm';

interface SqliteModule { Database: typeof Database }
let loaded: SqliteModule | undefined;

export function openSqlite(file: string, options?: { readOnly?: boolean; fileMustExist?: boolean }): Database {
  loaded ??= createRequire(import.meta.url)('node-sqlite3-wasm') as SqliteModule;
  return new loaded.Database(file, options);
}

export type { Database, SQLiteValue } from 'node-sqlite3-wasm';
