/**
 * The erasure ledger on SQLite (the default store): one file, written through node-sqlite3-wasm (SQLite
 * compiled to WebAssembly with a Node file-system VFS, so no native build on Node 20, which has no
 * node:sqlite). Every change and its audit entry commit in one transaction, with synchronous=FULL.
 *
 * Every use of the file holds an OwnerLock (`<file>.owner`, see _sqlite.ts): a process killed inside a read
 * or a transaction leaves the VFS's `<file>.lock` directory behind, and the next process clears it at once
 * because no running process owns it. A service opens its ledger through `SqliteErasureLedger.open`, which
 * checks the head record (ledgerHead.ts): a lost, emptied or rolled-back ledger is refused, never recreated.
 *
 * SQLite's failures (disk full, I/O, a read-only file) become ledger-unavailable naming SQLite's result code,
 * never a value; a failed COMMIT has already rolled back, so ROLLBACK is only issued while a transaction is open.
 */
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { openSqlite, OwnerLock, OwnerLockBusy, type Database, type SQLiteValue } from './_sqlite.ts';
import { ConfigError, LedgerError, PlatformError } from '../errors.ts';
import { checkLedgerHead, EMPTY_HEAD, readLedgerHead, writeLedgerHead, type LedgerHead } from './ledgerHead.ts';
import {
  auditHash,
  checkExpected,
  checkExtendable,
  coverageAuditInput,
  GENESIS_HASH,
  liftRefused,
  mergeProgress,
  newPseudonyms,
  nextStepId,
  type AuditEntry,
  type AuditInput,
  type CoverageAudit,
  type ErasureLedger,
  type ErasureRequest,
  type ErasureStatus,
  type ErasureSubject,
  type LiftReason,
  type LiftRefusal,
  type NewDeadlineExtension,
  type NewErasureRequest,
  type NewSuppressionLift,
  type SuppressionLift,
  type StatusChange,
  type SubjectPseudonymAddition,
  type TableProgress,
} from './ledger.ts';

const FILE_KEY = 'PSEUDO_ERASURE_LEDGER_FILE';

export interface SqliteLedgerOptions {
  /** Create the file when there is none (default). False: a missing file is refused, naming the setting. */
  readonly create?: boolean;
  /** The head record to keep current after each audit entry (ledgerHead.ts); none for tools and tests. */
  readonly headFile?: string;
}

type Row = Record<string, SQLiteValue>;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS erasure_requests (
  id TEXT PRIMARY KEY,
  reference TEXT NOT NULL,
  reason TEXT NOT NULL,
  filed_by TEXT NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  subjects TEXT NOT NULL,
  tables TEXT NOT NULL,
  run_id TEXT,
  step_id TEXT,
  error TEXT,
  certificate TEXT,
  extension TEXT
);
CREATE INDEX IF NOT EXISTS erasure_requests_reference ON erasure_requests (reference);
CREATE INDEX IF NOT EXISTS erasure_requests_status ON erasure_requests (status);
CREATE TABLE IF NOT EXISTS erased_pseudonyms (
  context TEXT NOT NULL,
  pseudonym TEXT NOT NULL,
  request_id TEXT NOT NULL REFERENCES erasure_requests (id),
  PRIMARY KEY (context, pseudonym, request_id)
);
CREATE TABLE IF NOT EXISTS suppression_lifts (
  id TEXT PRIMARY KEY,
  reference TEXT NOT NULL,
  reason TEXT NOT NULL,
  lifted_by TEXT NOT NULL,
  created_at TEXT NOT NULL,
  subjects TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_log (
  seq INTEGER PRIMARY KEY,
  at TEXT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  request_id TEXT,
  outcome TEXT NOT NULL,
  previous_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
`;

export class SqliteErasureLedger implements ErasureLedger {
  readonly description: string;
  private readonly db: Database;
  private readonly lock: OwnerLock;
  private readonly headFile: string | undefined;
  /** The audit head a transaction appended, written to the head record once it commits. */
  private appendedHead: LedgerHead | undefined;
  private erasedCache = new Map<string, Set<string>>();
  private cachedDataVersion = -1;

  constructor(
    readonly file: string,
    options: SqliteLedgerOptions = {},
  ) {
    this.description = `SQLite ledger ${file}`;
    this.headFile = options.headFile;
    // The VFS's lock directory is made only inside the owner lock, so one found while holding it is a dead process's.
    this.lock = new OwnerLock(`${file}.owner`, () => {
      rmSync(`${file}.lock`, { recursive: true, force: true });
    });
    const create = options.create ?? true;
    checkPath(file, create);
    try {
      if (create) mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      this.db = this.lock.holdWhile(() => openSqlite(file, { fileMustExist: !create }));
    } catch (error) {
      throw openFailure(file, error);
    }
    try {
      this.lock.holdWhile(() => {
        this.db.exec(`PRAGMA journal_mode=DELETE; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000; ${SCHEMA}`);
        // Ledgers created before the stepped runner (lambda/erasureStep.ts) have no step_id column yet.
        const columns = (this.db.all('PRAGMA table_info(erasure_requests)') as Row[]).map((row) => String(row.name));
        if (!columns.includes('step_id')) this.db.exec('ALTER TABLE erasure_requests ADD COLUMN step_id TEXT');
        // Nor those from before deadline extensions.
        if (!columns.includes('extension')) this.db.exec('ALTER TABLE erasure_requests ADD COLUMN extension TEXT');
      });
    } catch (error) {
      this.db.close();
      throw openFailure(file, error);
    }
  }

  /**
   * Opens a service's ledger against its head record: with no record, a first start creates the ledger (or adopts
   * one from before head records) and records its head; with a record, a missing or empty file, a chain behind the
   * recorded head or another ledger is refused with a ConfigError naming the setting and the files. Never recreates.
   * `forReading`: no record is no first start but no ledger, and the record is checked, not written.
   */
  static open(file: string, headFile: string, options: { readonly forReading?: boolean } = {}): { ledger: SqliteErasureLedger; created: boolean } {
    const recorded = readLedgerHead(headFile);
    const size = fileSize(file);
    // A tool that reads (the audit CLI) never creates a ledger and leaves the head record to the service.
    if (options.forReading && !recorded && (size === undefined || size === 0)) throw new ConfigError(`${FILE_KEY}: there is no erasure ledger at ${file}`);
    if (recorded && (size === undefined || size === 0)) {
      throw new ConfigError(
        `${FILE_KEY}: the erasure ledger ${file} is ${size === undefined ? 'missing' : 'empty (0 bytes)'}, but ${headFile} records a ledger with ${recorded.seq} audit entries. ` +
          'The service never recreates a ledger: restore the file from its latest backup (README: Backups and restoring state)',
      );
    }
    const ledger = new SqliteErasureLedger(file, options.forReading ? { create: false } : { create: recorded === undefined, headFile });
    try {
      if (recorded) {
        const last = ledger.lock.holdWhile(() => ledger.readHead());
        checkLedgerHead(file, headFile, recorded, (seq) => ledger.lock.holdWhile(() => ledger.hashAt(seq)), last);
      }
      const head = ledger.lock.holdWhile(() => ledger.readHead());
      if (options.forReading) return { ledger, created: false };
      try {
        writeLedgerHead(headFile, file, head);
      } catch {
        throw new ConfigError(`PSEUDO_DATA_DIR: the erasure ledger's head record ${headFile} cannot be written`);
      }
    } catch (error) {
      ledger.db.close();
      throw error instanceof PlatformError ? error : openFailure(file, error);
    }
    return { ledger, created: recorded === undefined && (size === undefined || size === 0) };
  }

  create(request: NewErasureRequest, audit: AuditInput, isSame?: (existing: ErasureRequest) => boolean): Promise<{ request: ErasureRequest; created: boolean }> {
    return this.guarded(() => {
      const now = new Date().toISOString();
      return this.transaction(() => {
        if (isSame) {
          const rows = this.db.all('SELECT * FROM erasure_requests WHERE reference = ? ORDER BY created_at', [request.reference]) as Row[];
          const existing = rows.map(toRequest).find(isSame);
          if (existing) return { request: existing, created: false };
        }
        this.db.run(
          'INSERT INTO erasure_requests (id, reference, reason, filed_by, status, attempts, created_at, updated_at, subjects, tables) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?)',
          [request.id, request.reference, request.reason, request.filedBy, 'received', now, now, JSON.stringify(request.subjects), JSON.stringify(request.tables)],
        );
        for (const subject of request.subjects) {
          for (const pseudonym of subject.pseudonyms) {
            this.db.run('INSERT OR IGNORE INTO erased_pseudonyms (context, pseudonym, request_id) VALUES (?, ?, ?)', [subject.context, pseudonym, request.id]);
          }
        }
        this.insertAudit(audit, now);
        // data_version only moves for other connections' commits: drop the cache for our own.
        this.cachedDataVersion = -1;
        return { request: this.read(request.id)!, created: true };
      });
    });
  }

  get(id: string): Promise<ErasureRequest | undefined> {
    return this.guarded(() => {
      return this.read(id);
    });
  }

  private read(id: string): ErasureRequest | undefined {
    const row = this.db.get('SELECT * FROM erasure_requests WHERE id = ?', [id]) as Row | null;
    return row ? toRequest(row) : undefined;
  }

  list(status?: ErasureStatus): Promise<ErasureRequest[]> {
    return this.guarded(() => {
      const rows = (status
        ? this.db.all('SELECT * FROM erasure_requests WHERE status = ? ORDER BY created_at, id', [status])
        : this.db.all('SELECT * FROM erasure_requests ORDER BY created_at, id')) as Row[];
      return rows.map(toRequest);
    });
  }

  transition(id: string, change: StatusChange, audit: AuditInput): Promise<ErasureRequest> {
    return this.guarded(() => {
      const now = new Date().toISOString();
      return this.transaction(() => {
        const current = this.read(id);
        if (!current) throw new PlatformError('not-found', 'no erasure request with this id');
        checkExpected(current, change);
        this.db.run('UPDATE erasure_requests SET status = ?, attempts = ?, tables = ?, run_id = ?, step_id = ?, error = ?, certificate = ?, updated_at = ? WHERE id = ?', [
          change.status,
          change.attempts ?? current.attempts,
          JSON.stringify(change.tables ?? current.tables),
          change.runId ?? current.runId ?? null,
          nextStepId(current, change) ?? null,
          change.error ?? null,
          change.certificate === undefined ? (current.certificate === undefined ? null : JSON.stringify(current.certificate)) : JSON.stringify(change.certificate),
          now,
          id,
        ]);
        this.insertAudit(audit, now);
        return this.read(id)!;
      });
    });
  }

  extend(id: string, extension: NewDeadlineExtension, audit: AuditInput): Promise<ErasureRequest> {
    return this.guarded(() => {
      const now = new Date().toISOString();
      return this.transaction(() => {
        const current = this.read(id);
        if (!current) throw new PlatformError('not-found', 'no erasure request with this id');
        checkExtendable(current);
        // updated_at stays: it says when the erasure last moved, and an extension is no move.
        this.db.run('UPDATE erasure_requests SET extension = ? WHERE id = ?', [JSON.stringify({ ...extension, at: now }), id]);
        this.insertAudit(audit, now);
        return this.read(id)!;
      });
    });
  }

  updateTables(id: string, runId: string, tables: readonly TableProgress[]): Promise<void> {
    return this.guarded(() => {
      // Read, merge and write in one write transaction: another process's report lands before or after, never between.
      this.transaction(() => {
        const current = this.read(id);
        if (current?.status !== 'running' || current.runId !== runId) return;
        const merged = mergeProgress(current.tables, tables);
        this.db.run('UPDATE erasure_requests SET tables = ?, updated_at = ? WHERE id = ?', [JSON.stringify(merged), new Date().toISOString(), id]);
      });
    });
  }

  erasedPseudonyms(context: string): Promise<ReadonlySet<string>> {
    return this.guarded(() => {
      // data_version changes when another connection (another worker process) commits: reload then.
      const version = Number((this.db.get('PRAGMA data_version') as Row).data_version);
      if (version !== this.cachedDataVersion) {
        this.erasedCache = new Map();
        for (const row of this.db.all('SELECT context, pseudonym FROM erased_pseudonyms') as Row[]) {
          const key = String(row.context);
          let set = this.erasedCache.get(key);
          if (!set) this.erasedCache.set(key, (set = new Set()));
          set.add(String(row.pseudonym));
        }
        this.cachedDataVersion = version;
      }
      return this.erasedCache.get(context) ?? new Set();
    });
  }

  /** Deletes the subjects' rows from erased_pseudonyms (a later filing inserts new ones: the latest event wins). */
  lift(lift: NewSuppressionLift, audit: AuditInput): Promise<SuppressionLift> {
    return this.guarded(() => {
      const createdAt = new Date().toISOString();
      return this.transaction(() => {
        const refusals: LiftRefusal[] = [];
        lift.subjects.forEach((subject, index) => {
          const marks = subject.pseudonyms.map(() => '?').join(', ');
          const rows = this.db.all(
            `SELECT r.status AS status FROM erased_pseudonyms e JOIN erasure_requests r ON r.id = e.request_id WHERE e.context = ? AND e.pseudonym IN (${marks})`,
            [subject.context, ...subject.pseudonyms],
          ) as Row[];
          if (rows.length === 0) refusals.push({ index, reason: 'not-suppressed' });
          else if (rows.some((row) => row.status === 'received' || row.status === 'running')) refusals.push({ index, reason: 'erasure-pending' });
        });
        if (refusals.length > 0) throw liftRefused(refusals);
        for (const subject of lift.subjects) {
          for (const pseudonym of subject.pseudonyms) this.db.run('DELETE FROM erased_pseudonyms WHERE context = ? AND pseudonym = ?', [subject.context, pseudonym]);
        }
        this.db.run('INSERT INTO suppression_lifts (id, reference, reason, lifted_by, created_at, subjects) VALUES (?, ?, ?, ?, ?, ?)', [
          lift.id,
          lift.reference,
          lift.reason,
          lift.liftedBy,
          createdAt,
          JSON.stringify(lift.subjects),
        ]);
        this.insertAudit(audit, createdAt);
        this.cachedDataVersion = -1; // our own commit does not move data_version
        return { ...lift, createdAt };
      });
    });
  }

  addPseudonyms(id: string, additions: readonly SubjectPseudonymAddition[], audit: CoverageAudit): Promise<{ request: ErasureRequest; added: number }> {
    return this.guarded(() => {
      const now = new Date().toISOString();
      return this.transaction(() => {
        const current = this.read(id);
        if (!current) throw new PlatformError('not-found', 'no erasure request with this id');
        // Suppressed: some pseudonym of the subject is still erased in its context (under this request or a later one).
        const isSuppressed = (subject: ErasureSubject): boolean =>
          subject.pseudonyms.length > 0 &&
          this.db.get(`SELECT 1 AS found FROM erased_pseudonyms WHERE context = ? AND pseudonym IN (${subject.pseudonyms.map(() => '?').join(', ')}) LIMIT 1`, [subject.context, ...subject.pseudonyms]) !== null;
        const { subjects, added } = newPseudonyms(current.subjects, additions, isSuppressed);
        if (added.length === 0) return { request: current, added: 0 };
        // updated_at stays: it says when the erasure last moved, and this is no move.
        this.db.run('UPDATE erasure_requests SET subjects = ? WHERE id = ?', [JSON.stringify(subjects), id]);
        for (const { context, pseudonyms } of added) {
          for (const pseudonym of pseudonyms) this.db.run('INSERT OR IGNORE INTO erased_pseudonyms (context, pseudonym, request_id) VALUES (?, ?, ?)', [context, pseudonym, id]);
        }
        const count = added.reduce((sum, a) => sum + a.pseudonyms.length, 0);
        this.insertAudit(coverageAuditInput(id, audit, count, added.length), now);
        this.cachedDataVersion = -1; // our own commit does not move data_version
        return { request: this.read(id)!, added: count };
      });
    });
  }

  lifts(): Promise<SuppressionLift[]> {
    return this.guarded(() =>
      (this.db.all('SELECT * FROM suppression_lifts ORDER BY created_at, id') as Row[]).map((row) => ({
        id: String(row.id),
        reference: String(row.reference),
        reason: String(row.reason) as LiftReason,
        liftedBy: String(row.lifted_by),
        createdAt: String(row.created_at),
        subjects: JSON.parse(String(row.subjects)) as SuppressionLift['subjects'],
      })),
    );
  }

  auditEntries(): Promise<AuditEntry[]> {
    return this.guarded(() => {
      return (this.db.all('SELECT * FROM audit_log ORDER BY seq') as Row[]).map((row) => ({
        seq: Number(row.seq),
        at: String(row.at),
        actor: String(row.actor),
        action: String(row.action),
        requestId: row.request_id === null ? undefined : String(row.request_id),
        outcome: String(row.outcome),
        previousHash: String(row.previous_hash),
        hash: String(row.hash),
      }));
    });
  }

  close(): Promise<void> {
    return this.guarded(() => {
      if (this.db.isOpen) this.db.close();
    });
  }

  private insertAudit(input: AuditInput, at: string): AuditEntry {
    const last = this.db.get('SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1') as Row | null;
    const seq = last ? Number(last.seq) + 1 : 1;
    const previousHash = last ? String(last.hash) : GENESIS_HASH;
    const entry = { seq, at, actor: input.actor, action: input.action, requestId: input.requestId, outcome: input.outcome };
    const hash = auditHash(previousHash, entry);
    this.db.run('INSERT INTO audit_log (seq, at, actor, action, request_id, outcome, previous_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', [
      seq,
      at,
      input.actor,
      input.action,
      input.requestId ?? null,
      input.outcome,
      previousHash,
      hash,
    ]);
    this.appendedHead = { seq, hash };
    return { ...entry, previousHash, hash };
  }

  /** The audit head: the last entry's seq and hash, or the genesis head. */
  private readHead(): LedgerHead {
    const last = this.db.get('SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1') as Row | null;
    return last ? { seq: Number(last.seq), hash: String(last.hash) } : EMPTY_HEAD;
  }

  private hashAt(seq: number): string | undefined {
    const row = this.db.get('SELECT hash FROM audit_log WHERE seq = ?', [seq]) as Row | null;
    return row ? String(row.hash) : undefined;
  }

  /** One use of the file: inside the owner lock, SQLite's failures as ledger-unavailable. A throw rejects. */
  private guarded<T>(work: () => T): Promise<T> {
    return settle(() => {
      try {
        return this.lock.holdWhile(work);
      } catch (error) {
        throw error instanceof PlatformError ? error : new LedgerError(`the erasure ledger cannot be read or written: ${sqliteCause(error)}`);
      }
    });
  }

  private transaction<T>(work: () => T): T {
    this.db.exec('BEGIN IMMEDIATE');
    let result: T;
    try {
      result = work();
      this.db.exec('COMMIT');
    } catch (error) {
      // A failed COMMIT (disk full, I/O error) has already rolled back; a second ROLLBACK would hide its cause.
      if (this.db.inTransaction) {
        try {
          this.db.exec('ROLLBACK');
        } catch {
          // the first error is the one to report
        }
      }
      this.appendedHead = undefined;
      throw error;
    }
    this.recordHead();
    return result;
  }

  /** After a commit that appended audit entries: the head record follows, still inside the owner lock. */
  private recordHead(): void {
    const head = this.appendedHead;
    this.appendedHead = undefined;
    if (!head || !this.headFile) return;
    try {
      writeLedgerHead(this.headFile, this.file, head);
    } catch {
      // The entry is committed; a record left one entry behind only makes the start-up check less strict.
    }
  }
}
function toRequest(row: Row): ErasureRequest {
  const text = (name: string): string | undefined => (row[name] === null || row[name] === undefined ? undefined : String(row[name]));
  const certificate = text('certificate');
  const extension = text('extension');
  return {
    id: String(row.id),
    reference: String(row.reference),
    reason: String(row.reason) as ErasureRequest['reason'],
    filedBy: String(row.filed_by),
    status: String(row.status) as ErasureStatus,
    attempts: Number(row.attempts),
    createdAt: String(row.created_at),
    updatedAt: String(row.updated_at),
    subjects: JSON.parse(String(row.subjects)) as ErasureRequest['subjects'],
    tables: JSON.parse(String(row.tables)) as ErasureRequest['tables'],
    runId: text('run_id'),
    stepId: text('step_id'),
    error: text('error'),
    certificate: certificate === undefined ? undefined : (JSON.parse(certificate) as unknown),
    extension: extension === undefined ? undefined : (JSON.parse(extension) as ErasureRequest['extension']),
  };
}

function fileSize(file: string): number | undefined {
  try {
    return statSync(file).size;
  } catch {
    return undefined;
  }
}

/** A path that cannot hold the ledger, named before SQLite tries: a folder, or a file where a folder must be. */
function checkPath(file: string, create: boolean): void {
  let stat;
  try {
    stat = statSync(file);
  } catch (error) {
    const code = typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
    if (code === 'ENOTDIR') throw new ConfigError(`${FILE_KEY}: ${file} cannot be the erasure ledger: a part of its folder path is a file`);
    if (code === 'ENOENT' && !create) throw new ConfigError(`${FILE_KEY}: there is no erasure ledger at ${file}`);
    return;
  }
  if (stat.isDirectory()) throw new ConfigError(`${FILE_KEY}: ${file} cannot be the erasure ledger: it is a folder`);
}

function openFailure(file: string, error: unknown): PlatformError {
  if (error instanceof PlatformError) return error;
  if (error instanceof OwnerLockBusy) return new LedgerError(`the erasure ledger at ${file} cannot be opened: another running process holds it`);
  const code = typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : undefined;
  if (code === 'ENOTDIR' || code === 'EEXIST') return new ConfigError(`${FILE_KEY}: ${file} cannot be the erasure ledger: a part of its folder path is a file`);
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return new LedgerError(`the erasure ledger at ${file} cannot be opened: ${code} (no permission to its file or folder)`);
  return new LedgerError(`the erasure ledger at ${file} cannot be opened: ${sqliteCause(error)}`);
}

/**
 * SQLite's result as a fixed phrase with its code (its own messages can quote SQL, never caller values, but only
 * the known ones are passed on). node-sqlite3-wasm's VFS answers every failed write, ENOSPC included, as an I/O error.
 */
const SQLITE_CAUSES: readonly (readonly [RegExp, string])[] = [
  [/database or disk is full/, 'SQLITE_FULL (the disk is full)'],
  [/disk I\/O error/, 'SQLITE_IOERR (a disk read or write failed: a full disk, a lost volume)'],
  [/database is locked|database table is locked/, 'SQLITE_BUSY (another process holds the file)'],
  [/readonly database/, 'SQLITE_READONLY (the file or its folder cannot be written)'],
  [/unable to open database file|Could not open the database/, 'SQLITE_CANTOPEN (the file cannot be opened)'],
  [/malformed|not a database/, 'SQLITE_CORRUPT (the file is not an intact SQLite database)'],
];

function sqliteCause(error: unknown): string {
  if (error instanceof OwnerLockBusy) return 'another running process holds the file';
  const message = error instanceof Error ? error.message : '';
  return SQLITE_CAUSES.find(([pattern]) => pattern.test(message))?.[1] ?? `SQLITE_ERROR (${error instanceof Error ? error.name : 'unknown error'})`;
}

/** The ledger's work is synchronous (one local file); the interface is asynchronous for networked stores. A throw rejects. */
function settle<T>(work: () => T): Promise<T> {
  return new Promise<T>((resolve) => {
    resolve(work());
  });
}
