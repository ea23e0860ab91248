/**
 * What `keys destroy` checks before it shreds a version: after destroy, every pseudonym of that version is
 * irreversible, so a version is destroyed only when no registered table may still hold it.
 *
 * Which versions a table holds comes from the key inventory (contracts/key-inventory.schema.json) that the re-keying
 * job writes, counting the table's remaining snapshots too. A registered table or column the inventory does not
 * list is assumed to hold every version: nothing is known about it, so it blocks.
 */
import { existsSync, readFileSync } from 'node:fs';
import { GetObjectCommand, NoSuchKey, S3Client } from '@aws-sdk/client-s3';
import { ContractError, parseContractJson, type KeyInventory } from '../contracts/contracts.ts';
import type { RegisteredTable } from '../erasure/registry.ts';
import { KeyInventoryError } from '../errors.ts';
import { awsClientConfig, awsFailureMessage, type AwsEndpointOptions } from '../storage/documents.ts';

/** A registered table that may still hold the version, and why (names and columns only: never data). */
export interface HoldingTable {
  readonly table: string;
  readonly reason: string;
}

/** The key inventory at a path or s3:// URI; undefined when there is none yet (no re-keying job has run). */
export async function readKeyInventory(location: string, aws: AwsEndpointOptions): Promise<KeyInventory | undefined> {
  let text: string;
  if (location.startsWith('s3://')) {
    const [bucket, ...key] = location.slice('s3://'.length).split('/');
    try {
      const object = await new S3Client(awsClientConfig(aws)).send(new GetObjectCommand({ Bucket: bucket, Key: key.join('/') }));
      text = (await object.Body?.transformToString('utf8')) ?? '';
    } catch (error) {
      if (error instanceof NoSuchKey) return undefined;
      throw new KeyInventoryError(awsFailureMessage(`the key inventory ${location}`, error));
    }
  } else {
    if (!existsSync(location)) return undefined;
    try {
      text = readFileSync(location, 'utf8');
    } catch {
      throw new KeyInventoryError(`the key inventory ${location} cannot be read`);
    }
  }
  try {
    return parseContractJson('key-inventory', text);
  } catch (error) {
    throw error instanceof ContractError ? new KeyInventoryError(`the key inventory ${location}: ${error.message}`) : error;
  }
}

/**
 * The registered tables that may still hold `version`, with the reason; empty when it is safe to destroy.
 * `retiredAt` is when the version stopped being the active one (the next version's creation): an entry recorded
 * before then cannot vouch for the table, since writers still issued the version afterwards (recorded under v1, the
 * table then gets v2 rows, the key rotates to v3: that entry knows nothing of v2). Writers that keep issuing it
 * for their keyring refresh interval after the rotation are the operator's to wait out (README, key rotation).
 */
export function tablesHoldingVersion(tables: readonly RegisteredTable[], inventory: KeyInventory | undefined, version: number, retiredAt?: Date): HoldingTable[] {
  const holding: HoldingTable[] = [];
  for (const table of tables) {
    const entry = inventory?.tables[table.name];
    if (!entry) {
      holding.push({ table: table.name, reason: 'no key inventory (run the re-key job)' });
      continue;
    }
    if (retiredAt && Date.parse(entry.recordedAt) < retiredAt.getTime()) {
      holding.push({ table: table.name, reason: `key inventory recorded before version ${version} stopped being issued (run the re-key job again)` });
      continue;
    }
    const unknown = Object.keys(table.columns).filter((column) => !entry.columns[column]);
    const holds = Object.entries(entry.columns)
      .filter(([, column]) => column.keyVersions.includes(version))
      .map(([column]) => column);
    if (unknown.length > 0) holding.push({ table: table.name, reason: `no key inventory for column ${unknown.join(', ')} (run the re-key job)` });
    else if (holds.length > 0) holding.push({ table: table.name, reason: `holds version ${version} in ${holds.join(', ')} (re-key it, and expire its old snapshots)` });
  }
  return holding;
}
