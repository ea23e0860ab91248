/**
 * The documents that cross between this service and the Python jobs, checked against one set of JSON Schemas
 * (draft 2020-12, the repository's `contracts/` folder; spark_udfs/contracts.py checks the same files, and both
 * sides' tests load the same golden documents in `contracts/golden/`):
 *
 * - the erasure order (written here by the runners, read by the Spark erasure job),
 * - the erasure progress and certificate (written by the job, read here and served by the API),
 * - the streaming exactly-once marker (written and read by the Python jobs; its batch ids reach the certificate),
 * - the key inventory (written by the re-keying job, read by `keys destroy`: which key versions each table still holds),
 * - the table registry (written by an operator, read here and by the re-keying and maintenance jobs).
 *
 * 64-bit integers (snapshot ids, batch ids, row, file and byte counts) travel as decimal strings and stay
 * strings here: a JavaScript number rounds above 2^53 (9130679734744880546 became 9130679734744880000). The
 * schemas refuse a number in their place, so a rounded value can never be accepted.
 *
 * The schemas are imported as JSON so that esbuild bundles them: nothing reads the repository at run time.
 * Validators are compiled on first use (a Lambda that never touches erasure pays nothing at start).
 */
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import { PlatformError } from '../errors.ts';
import commonSchema from '../../contracts/common.schema.json' with { type: 'json' };
import orderSchema from '../../contracts/erasure-order.schema.json' with { type: 'json' };
import progressSchema from '../../contracts/erasure-progress.schema.json' with { type: 'json' };
import certificateSchema from '../../contracts/erasure-certificate.schema.json' with { type: 'json' };
import streamMarkerSchema from '../../contracts/stream-marker.schema.json' with { type: 'json' };
import keyInventorySchema from '../../contracts/key-inventory.schema.json' with { type: 'json' };
import tableRegistrySchema from '../../contracts/table-registry.schema.json' with { type: 'json' };

/** A 64-bit integer as a decimal string (`^-?[0-9]+$`); compare with BigInt, never Number. */
export type Int64String = string;

export type TableStatus = 'pending' | 'running' | 'verified' | 'failed';

/** The Spark erasure job's input: pseudonyms only, never identifiers. */
export interface ErasureOrder {
  readonly runId: string;
  readonly requestIds: readonly string[];
  readonly subjects: readonly { readonly context: string; readonly pseudonyms: readonly string[] }[];
  /** `<catalog>.<namespace>.<table>` and column -> context */
  readonly tables: readonly { readonly name: string; readonly columns: Readonly<Record<string, string>> }[];
  readonly catalog:
    | { readonly name: string; readonly type: 'jdbc'; readonly uri: string; readonly warehouse: string }
    | { readonly name: string; readonly type: 'glue'; readonly warehouse: string };
  readonly orphanGraceSeconds: number;
  readonly refs: 'drop';
}

export interface ProgressEntry {
  readonly table: string;
  readonly status: TableStatus;
  readonly detail?: string;
}

/** Per-table states the job writes while it runs (progress.json). */
export type ErasureProgress = readonly ProgressEntry[];

export interface TableVerification {
  readonly method: string;
  readonly filesScanned: Int64String;
  readonly bytesScanned: Int64String;
  readonly filesWithMatches: readonly string[];
  readonly snapshotsChecked: Int64String;
  readonly timeTravelRows: Int64String;
  readonly otherRowsBefore: Int64String;
  readonly otherRowsAfter: Int64String;
  readonly result: 'passed' | 'failed';
}

export interface TableReport {
  readonly table: string;
  /** null when the table had no snapshot */
  readonly snapshotBefore: Int64String | null;
  readonly snapshotAfter: Int64String | null;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly commitConflictsRetried: number;
  readonly otherRowsBefore: Int64String;
  readonly rowsDeleted: Int64String;
  readonly dataFilesRewritten: Int64String;
  readonly deleteFilesRemoved: Int64String | null;
  readonly positionDeleteFilesRewritten: Int64String;
  /** Manifests rewritten because they still listed removed files; absent in older certificates. */
  readonly manifestsRewritten?: Int64String;
  readonly refs: readonly { readonly name: string; readonly type: 'tag' | 'branch'; readonly snapshotId: Int64String; readonly action: 'dropped' }[];
  /** streaming query id -> highest batch id */
  readonly streamMarkersFolded: Readonly<Record<string, Int64String>>;
  readonly filesDeletedByExpiry: Readonly<Record<string, Int64String>>;
  readonly orphanFilesDeleted: Int64String;
  readonly previousMetadataFilesDeleted: Int64String;
  readonly verification: TableVerification;
}

export interface ErasureCertificate {
  readonly certificateVersion: 2;
  readonly runId: string;
  readonly requestIds: readonly string[];
  readonly subjects: number;
  readonly pseudonymsSearched: number;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly tables: readonly TableReport[];
  readonly result: 'verified' | 'failed';
}

/** Snapshot-summary properties of one exactly-once micro-batch append. */
export interface StreamMarker {
  readonly 'stream-consumer.query-id': string;
  readonly 'stream-consumer.batch-id': Int64String;
}

/** One pseudonymized column of a table in the key inventory: the key versions it still holds, snapshots included. */
export interface KeyInventoryColumn {
  readonly context: string;
  readonly keyVersions: readonly number[];
  /** `declared` for FF1 columns, whose pseudonyms carry no version: the versions the re-keying job was told. */
  readonly versionSource?: 'prefix' | 'declared';
}

/** Which key versions each registered table still holds, per column (written by the re-keying job). */
export interface KeyInventory {
  readonly inventoryVersion: 1;
  readonly tables: Readonly<Record<string, { readonly columns: Readonly<Record<string, KeyInventoryColumn>>; readonly snapshotId: Int64String | null; readonly recordedAt: string }>>;
}

/** The maintenance job's settings in a table registry, global or per table (contracts/table-registry.schema.json). */
export interface MaintenanceSettings {
  readonly strategy?: 'binpack' | 'sort';
  readonly targetFileSizeBytes?: number;
  readonly partialProgress?: boolean;
  readonly where?: string;
  readonly snapshotRetentionHours?: number;
  readonly retainLastSnapshots?: number;
  readonly metadataPreviousVersionsMax?: number;
  readonly orphanGraceHours?: number;
}

/** Which Iceberg tables hold which contexts in which columns (PSEUDO_ERASURE_REGISTRY_FILE, the jobs' --registry). */
export interface TableRegistryDocument {
  readonly catalog:
    | { readonly name?: string; readonly type: 'jdbc'; readonly uri: string; readonly warehouse: string }
    | { readonly name?: string; readonly type: 'glue'; readonly warehouse: string };
  /** `<catalog>.<namespace>.<table>` and column -> context */
  readonly tables: readonly { readonly name: string; readonly columns: Readonly<Record<string, string>>; readonly maintenance?: MaintenanceSettings }[];
  readonly keyInventory?: string;
  readonly maintenance?: MaintenanceSettings;
}

export interface ContractDocuments {
  readonly 'erasure-order': ErasureOrder;
  readonly 'erasure-progress': ErasureProgress;
  readonly 'erasure-certificate': ErasureCertificate;
  readonly 'stream-marker': StreamMarker;
  readonly 'key-inventory': KeyInventory;
  readonly 'table-registry': TableRegistryDocument;
}

export type ContractName = keyof ContractDocuments;

export const CONTRACT_NAMES: readonly ContractName[] = ['erasure-order', 'erasure-progress', 'erasure-certificate', 'stream-marker', 'key-inventory', 'table-registry'];

const SCHEMAS: Readonly<Record<ContractName, object>> = {
  'erasure-order': orderSchema,
  'erasure-progress': progressSchema,
  'erasure-certificate': certificateSchema,
  'stream-marker': streamMarkerSchema,
  'key-inventory': keyInventorySchema,
  'table-registry': tableRegistrySchema,
};

/** The shared patterns, for checks outside a whole document (the table registry's names). */
export const TABLE_NAME_PATTERN = new RegExp(commonSchema.$defs.tableName.pattern);
export const IDENTIFIER_PATTERN = new RegExp(commonSchema.$defs.identifier.pattern);

/**
 * A document does not match its contract. The message names the document and the field (`$.tables[0].snapshotBefore`)
 * and the rule it breaks, never the value: an order holds pseudonyms.
 */
export class ContractError extends PlatformError {
  constructor(
    readonly contract: ContractName,
    readonly path: string,
    readonly reason: string,
  ) {
    super('contract-violation', `${contract}: ${path}: ${reason}`);
  }
}

export type ContractResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: ContractError };

/** What a failed keyword means, said without the value (the same words as spark_udfs/contracts.py). */
const REASONS: Readonly<Record<string, string>> = {
  type: 'has the wrong type',
  pattern: 'does not have the required form',
  required: 'misses a required field',
  additionalProperties: 'has a field the contract does not allow',
  propertyNames: 'has a field name the contract does not allow',
  enum: 'is not one of the allowed values',
  const: 'is not the required value',
  minItems: 'has too few items',
  minLength: 'is too short',
  maxLength: 'is too long',
  minProperties: 'has too few fields',
  minimum: 'is too small',
  maximum: 'is too large',
  oneOf: 'matches none of the allowed forms',
  uniqueItems: 'has duplicate items',
};

let validators: Map<ContractName, ValidateFunction> | undefined;

function validatorFor(name: ContractName): ValidateFunction {
  if (!validators) {
    const ajv = new Ajv2020({ strict: true, strictTypes: false, allErrors: false });
    ajv.addSchema(commonSchema);
    validators = new Map(CONTRACT_NAMES.map((contract) => [contract, ajv.compile(SCHEMAS[contract])]));
  }
  return validators.get(name)!;
}

/** `/tables/0/snapshotBefore` as `$.tables[0].snapshotBefore`, the form the Python side uses. */
function jsonPath(pointer: string): string {
  let path = '$';
  for (const raw of pointer.split('/').slice(1)) {
    const part = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    path += /^[0-9]+$/.test(part) ? `[${part}]` : `.${part}`;
  }
  return path;
}

function describe(name: ContractName, errors: readonly ErrorObject[] | null | undefined): ContractError {
  const first = errors?.[0];
  if (!first) return new ContractError(name, '$', 'does not match');
  const reason = REASONS[first.keyword] ?? `fails ${first.keyword}`;
  // The missing field's name comes from the schema, not from the document: safe to say.
  const missing = first.keyword === 'required' && typeof first.params.missingProperty === 'string' ? `: ${first.params.missingProperty}` : '';
  return new ContractError(name, jsonPath(first.instancePath), reason + missing);
}

/** Checks `value` against the named contract; the typed document, or the first mismatch. */
export function checkContract<N extends ContractName>(name: N, value: unknown): ContractResult<ContractDocuments[N]> {
  const validate = validatorFor(name);
  if (validate(value)) return { ok: true, value: value as ContractDocuments[N] };
  return { ok: false, error: describe(name, validate.errors) };
}

/** Like checkContract, but throws the ContractError. */
export function parseContract<N extends ContractName>(name: N, value: unknown): ContractDocuments[N] {
  const result = checkContract(name, value);
  if (!result.ok) throw result.error;
  return result.value;
}

/** A document's JSON text checked against its contract; text that is not JSON is refused as such. */
export function parseContractJson<N extends ContractName>(name: N, text: string): ContractDocuments[N] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ContractError(name, '$', 'is not JSON');
  }
  return parseContract(name, value);
}
