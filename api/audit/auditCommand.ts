/**
 * `npm run audit -- list | export | verify`: reading the erasure ledger's hash-chained audit log.
 *
 * - `list` prints a table for people, `export` one JSON object per line for a SIEM or an archive; both
 *   filter by request id and time range and never change the ledger.
 * - `verify` recomputes the chain and names the first entry whose hash or link does not hold. With
 *   `--head HASH` (the head hash kept elsewhere: a ticket, a WORM bucket) it also fails unless the chain
 *   still ends there, which is the only way to see a cut-off tail: removing the last entries leaves a
 *   chain that verifies on its own.
 *
 * - `init` creates a new, empty SQLite ledger and its head record where there is neither: the explicit step a start
 *   asks for when an installation turns erasure on for the first time (a start never fills a lost ledger's place).
 *
 * Exit status: 0 done, 1 the chain is broken or its head does not match (init: a ledger exists), 2 usage or configuration.
 * Entries hold actors, actions, request ids and outcomes, never subjects (see ledger.ts).
 */
import { parseArgs } from 'node:util';
import { ConfigError, errorMessage, PlatformError } from '../errors.ts';
import { verifyAuditChain, type AuditEntry, type ErasureLedger } from '../erasure/ledger.ts';

export const AUDIT_USAGE = `usage: npm run audit -- <command> [options]

Reads the erasure ledger's hash-chained audit log (the ledger the PSEUDO_* environment configures,
e.g. PSEUDO_ERASURE_LEDGER_FILE). Only init writes, and only where there is no ledger.

commands:
  list               the entries as a table
  export             the entries as JSON lines (one object per line, with their hashes)
  verify             recompute the chain; fails at the first entry whose hash or link does not hold
    --head HASH      also fail unless the chain ends at HASH: the head hash printed by an earlier
                     verify and kept elsewhere (a ticket, a WORM bucket); shows a removed tail
  init               create a new, empty SQLite ledger and its head record (PSEUDO_DATA_DIR/
                     erasure-ledger.head.json), for an installation that turns erasure on after its
                     first start: npm start refuses to make one while a keyring or API keys exist.
                     Refused (exit 1) while a ledger or a head record exists; it never replaces one

filters (list, export):
  --request ID       only the entries of one erasure request
  --since TIME       only entries at or after TIME (ISO 8601: 2026-01-31 or 2026-01-31T12:00:00Z)
  --until TIME       only entries before TIME

exit status: 0 done, 1 chain broken or head mismatch (init: a ledger exists), 2 usage or configuration error

examples:
  npm run audit -- list --since 2026-01-01
  npm run audit -- export --request er-0b9f3c2e --until 2026-02-01T00:00:00Z > er.jsonl
  npm run audit -- verify --head 5d41402abc4b2a76b9719d911017c592c1e1b6b1a5e0f6e2b8c3d9e7f0a1b2c3
  npm run audit -- init`;

export interface AuditCommandIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

/** Opens the configured ledger; throws a ConfigError when there is none to read. */
export type LedgerOpener = () => ErasureLedger | Promise<ErasureLedger>;

/** Creates the configured ledger (init); throws when one exists (exit 1) or the store has no such step (ConfigError, exit 2). */
export type LedgerCreator = () => Promise<Record<string, string>>;

class UsageError extends Error {}

interface Filters {
  readonly requestId?: string | undefined;
  readonly sinceMs?: number | undefined;
  readonly untilMs?: number | undefined;
}

const COMMANDS = new Set(['list', 'export', 'verify', 'init']);

/** Runs one audit command; returns the exit status. */
export async function runAuditCommand(argv: readonly string[], io: AuditCommandIo, openLedger: LedgerOpener, createLedger?: LedgerCreator): Promise<number> {
  let command: string;
  let filters: Filters;
  let expectedHead: string | undefined;
  try {
    const { values, positionals } = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        help: { type: 'boolean', short: 'h' },
        request: { type: 'string' },
        since: { type: 'string' },
        until: { type: 'string' },
        head: { type: 'string' },
      },
    });
    if (values.help) {
      io.stdout(`${AUDIT_USAGE}\n`);
      return 0;
    }
    const [first, ...rest] = positionals;
    if (!first || !COMMANDS.has(first)) throw new UsageError(first ? 'unknown command' : 'a command is needed: list, export, verify or init');
    if (rest.length > 0) throw new UsageError('unexpected arguments after the command');
    command = first;
    filters = { requestId: values.request, sinceMs: instant(values.since, '--since'), untilMs: instant(values.until, '--until') };
    if (command === 'verify') {
      if (values.request !== undefined || values.since !== undefined || values.until !== undefined) {
        throw new UsageError('verify checks the whole chain: --request, --since and --until apply to list and export');
      }
      if (values.head !== undefined && !/^[0-9a-f]{64}$/.test(values.head)) throw new UsageError('--head must be a SHA-256 hash: 64 lowercase hex digits');
      expectedHead = values.head;
    } else if (command === 'init') {
      if (values.request !== undefined || values.since !== undefined || values.until !== undefined || values.head !== undefined) throw new UsageError('init takes no options');
    } else if (values.head !== undefined) {
      throw new UsageError('--head applies to verify');
    }
  } catch (error) {
    // parseArgs names the option it could not read, never its value.
    io.stderr(`${error instanceof UsageError || isParseArgsError(error) ? errorMessage(error) : 'the arguments cannot be read'}\n${AUDIT_USAGE}\n`);
    return 2;
  }

  if (command === 'init') {
    try {
      if (!createLedger) throw new ConfigError('init is not available here');
      io.stdout(`${JSON.stringify({ created: await createLedger() }, null, 2)}\n`);
      return 0;
    } catch (error) {
      io.stderr(`${error instanceof PlatformError ? errorMessage(error) : 'the ledger cannot be created'}\n`);
      return error instanceof ConfigError ? 2 : 1;
    }
  }

  let ledger: ErasureLedger;
  try {
    ledger = await openLedger();
  } catch (error) {
    io.stderr(`${errorMessage(error)}\n`);
    return error instanceof ConfigError ? 2 : 1;
  }
  try {
    const entries = await ledger.auditEntries();
    if (command === 'verify') return verify(ledger.description, entries, expectedHead, io);
    const selected = entries.filter((entry) => matches(entry, filters));
    if (command === 'export') {
      for (const entry of selected) io.stdout(`${JSON.stringify(exported(entry))}\n`);
      io.stderr(`exported ${selected.length} of ${entries.length} entries\n`);
    } else {
      io.stdout(table(selected));
      io.stdout(`${selected.length} of ${entries.length} entries\n`);
    }
    return 0;
  } catch (error) {
    io.stderr(`${error instanceof PlatformError ? errorMessage(error) : 'the audit log cannot be read'}\n`);
    return 1;
  } finally {
    await ledger.close();
  }
}

function verify(description: string, entries: readonly AuditEntry[], expectedHead: string | undefined, io: AuditCommandIo): number {
  const verification = verifyAuditChain(entries);
  const head = entries.at(-1);
  const broken = verification.brokenAt === undefined ? undefined : entries.find((entry) => entry.seq === verification.brokenAt);
  // Where the kept hash sits tells a grown chain (kept hash found earlier: re-record the head) from a cut one (not found).
  const keptAt = expectedHead === undefined ? undefined : entries.find((entry) => entry.hash === expectedHead)?.seq;
  const headMatches = expectedHead === undefined ? undefined : head?.hash === expectedHead;
  const summary = {
    ledger: description,
    entries: verification.entries,
    valid: verification.valid,
    ...(broken ? { brokenAt: broken.seq, brokenEntry: { seq: broken.seq, at: broken.at, action: broken.action, requestId: broken.requestId ?? null } } : {}),
    // The head hash is what to keep elsewhere; it also exposes a cut-off tail at the next verify --head.
    headHash: head?.hash ?? null,
    ...(expectedHead === undefined ? {} : { expectedHead, headMatches, expectedHeadAt: keptAt ?? null }),
  };
  io.stdout(`${JSON.stringify(summary, null, 2)}\n`);
  if (broken) io.stderr(`the audit chain is broken at entry ${broken.seq} (${broken.action} at ${broken.at}): its hash or link does not hold\n`);
  if (headMatches === false) {
    io.stderr(
      keptAt === undefined
        ? 'the chain does not contain the kept head hash: entries were removed or rewritten since it was recorded\n'
        : `the chain's head is not the kept head hash: that hash is entry ${keptAt} of ${entries.length} (entries appended since it was recorded)\n`,
    );
  }
  return verification.valid && headMatches !== false ? 0 : 1;
}

function instant(text: string | undefined, option: string): number | undefined {
  if (text === undefined) return undefined;
  // Date.parse accepts more than ISO 8601; the pattern keeps the documented forms only.
  const ms = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/.test(text) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(ms)) throw new UsageError(`${option} must be an ISO 8601 date or date-time with a zone (2026-01-31 or 2026-01-31T12:00:00Z)`);
  return ms;
}

function matches(entry: AuditEntry, filters: Filters): boolean {
  if (filters.requestId !== undefined && entry.requestId !== filters.requestId) return false;
  const at = Date.parse(entry.at);
  if (filters.sinceMs !== undefined && !(at >= filters.sinceMs)) return false;
  if (filters.untilMs !== undefined && !(at < filters.untilMs)) return false;
  return true;
}

/** An entry with every field present (null for none), in a fixed key order: lines diff and load alike. */
function exported(entry: AuditEntry): Record<string, string | number | null> {
  return {
    seq: entry.seq,
    at: entry.at,
    actor: entry.actor,
    action: entry.action,
    requestId: entry.requestId ?? null,
    outcome: entry.outcome,
    previousHash: entry.previousHash,
    hash: entry.hash,
  };
}

function table(entries: readonly AuditEntry[]): string {
  const header = ['SEQ', 'AT', 'ACTOR', 'ACTION', 'REQUEST', 'OUTCOME', 'HASH'];
  // The first 12 hex digits of the hash are enough to find an entry in an export; export has the whole.
  const rows = entries.map((e) => [String(e.seq), e.at, e.actor, e.action, e.requestId ?? '-', e.outcome, e.hash.slice(0, 12)]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  return [header, ...rows].map((row) => `${row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd()}\n`).join('');
}

function isParseArgsError(error: unknown): boolean {
  return error instanceof TypeError && 'code' in error && typeof error.code === 'string' && error.code.startsWith('ERR_PARSE_ARGS_');
}
