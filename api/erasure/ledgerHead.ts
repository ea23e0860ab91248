/**
 * The erasure ledger's head record: a small file kept in the data folder, beside the keyring, that says a
 * ledger exists and how far its audit chain reached (`seq` and `hash` of the last entry). It is what lets a
 * start tell a true first start (no record: create the ledger) from a lost ledger (a record, but no file or an
 * empty one) and from a restored old backup (the file's chain ends before the recorded entry, or holds another
 * hash there). Both are refused: an empty or old ledger would forget filed erasures and let erased subjects be
 * reidentified again.
 *
 * The ledger rewrites the record after each commit that appends to the audit chain, inside its inter-process
 * lock, so the record never runs ahead of the file and never moves back.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import { GENESIS_HASH } from './ledger.ts';

export interface LedgerHead {
  /** The number of audit entries (the last one's seq); 0 for a ledger with none yet. */
  readonly seq: number;
  /** The last audit entry's hash; the genesis hash for a ledger with none yet. */
  readonly hash: string;
}

const FORMAT = 'pseudonymization-ledger-head/v1';

const headSchema = z.object({
  format: z.literal(FORMAT),
  ledger: z.string(),
  seq: z.number().int().nonnegative(),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  updatedAt: z.string(),
});

export const EMPTY_HEAD: LedgerHead = { seq: 0, hash: GENESIS_HASH };

/** The recorded head, or undefined when there is no record (a first start). A damaged record is refused, never ignored. */
export function readLedgerHead(headFile: string): (LedgerHead & { readonly ledger: string }) | undefined {
  let text: string;
  try {
    text = readFileSync(headFile, 'utf8');
  } catch (error) {
    if (typeof error === 'object' && error !== null && 'code' in error && error.code === 'ENOENT') return undefined;
    throw new ConfigError(`PSEUDO_DATA_DIR: the erasure ledger's head record ${headFile} cannot be read`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const parsed = headSchema.safeParse(json);
  if (!parsed.success) {
    throw new ConfigError(`PSEUDO_DATA_DIR: the erasure ledger's head record ${headFile} is damaged: restore it from the backup taken with the ledger`);
  }
  return parsed.data;
}

/** Replaces the record in one rename, so a reader sees the old record or the new one. */
export function writeLedgerHead(headFile: string, ledgerFile: string, head: LedgerHead): void {
  mkdirSync(dirname(headFile), { recursive: true, mode: 0o700 });
  const next = `${headFile}.${process.pid}.tmp`;
  const record = { format: FORMAT, ledger: ledgerFile, seq: head.seq, hash: head.hash, updatedAt: new Date().toISOString() };
  writeFileSync(next, JSON.stringify(record, null, 2) + '\n', { mode: 0o600, flush: true });
  renameSync(next, headFile);
}

/**
 * Refuses a ledger whose chain does not reach the recorded head: cut short or restored from an older backup
 * (fewer entries), or another ledger (a different hash at the recorded entry).
 */
export function checkLedgerHead(ledgerFile: string, headFile: string, recorded: LedgerHead, hashAt: (seq: number) => string | undefined, last: LedgerHead): void {
  const key = 'PSEUDO_ERASURE_LEDGER_FILE';
  if (last.seq < recorded.seq) {
    throw new ConfigError(
      `${key}: the erasure ledger ${ledgerFile} ends at audit entry ${last.seq}, behind entry ${recorded.seq} recorded in ${headFile}: ` +
        'it was restored from an older backup or cut short, and would forget erasures filed since. Restore the latest backup of the ledger',
    );
  }
  const hash = recorded.seq === 0 ? GENESIS_HASH : hashAt(recorded.seq);
  if (hash !== recorded.hash) {
    throw new ConfigError(
      `${key}: the erasure ledger ${ledgerFile} is not the one recorded in ${headFile}: its audit entry ${recorded.seq} has another hash. Restore the ledger this service wrote`,
    );
  }
}
