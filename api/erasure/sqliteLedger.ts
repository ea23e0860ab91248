/**
 * The erasure ledger on SQLite (the default store): one file, written through node-sqlite3-wasm (SQLite
 * compiled to WebAssembly with a Node file-system VFS, so no native build on Node 20, which has no
 * node:sqlite). Every change and its audit entry commit in one transaction, with synchronous=FULL.
 *
 * The VFS locks the file with a `<file>.lock` directory; a process killed inside a transaction leaves it
 * behind, so a lock older than STALE_LOCK_MS is removed on open (transactions here last milliseconds).
 */
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { openSqlite, type Database, type SQLiteValue } from './_sqlite.ts';
import { PlatformError } from '../errors.ts';
import {
  auditHash,
  checkExpected,
  GENESIS_HASH,
  liftRefused,
  nextStepId,
  type AuditEntry,
  type AuditInput,
  type ErasureLedger,
  type ErasureRequest,
  type ErasureStatus,
  type LiftReason,
  type LiftRefusal,
  type NewErasureRequest,
  type NewSuppressionLift,
  type SuppressionLift,
  type StatusChange,
  type TableProgress,
} from './ledger.ts';

const STALE_LOCK_MS = 30_000;

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
  certificate TEXT
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
  private erasedCache = new Map<string, Set<string>>();
  private cachedDataVersion = -1;

  constructor(readonly file: string) {
    this.description = `SQLite ledger ${file}`;
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    removeStaleLock(file);
    this.db = openSqlite(file);
    try {
      this.db.exec(`PRAGMA journal_mode=DELETE; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000; ${SCHEMA}`);
      // Ledgers created before the stepped runner (lambda/erasureStep.ts) have no step_id column yet.
      const columns = (this.db.all('PRAGMA table_info(erasure_requests)') as Row[]).map((row) => String(row.name));
      if (!columns.includes('step_id')) this.db.exec('ALTER TABLE erasure_requests ADD COLUMN step_id TEXT');
    } catch (error) {
      this.db.close();
      throw new PlatformError('ledger-unavailable', `the erasure ledger at ${file} cannot be opened: ${error instanceof Error ? error.message : 'unknown error'}`);
    }
  }

  create(request: NewErasureRequest, audit: AuditInput, isSame?: (existing: ErasureRequest) => boolean): Promise<{ request: ErasureRequest; created: boolean }> {
    return settle(() => {
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
    return settle(() => {
      return this.read(id);
    });
  }

  private read(id: string): ErasureRequest | undefined {
    const row = this.db.get('SELECT * FROM erasure_requests WHERE id = ?', [id]) as Row | null;
    return row ? toRequest(row) : undefined;
  }

  list(status?: ErasureStatus): Promise<ErasureRequest[]> {
    return settle(() => {
      const rows = (status
        ? this.db.all('SELECT * FROM erasure_requests WHERE status = ? ORDER BY created_at, id', [status])
        : this.db.all('SELECT * FROM erasure_requests ORDER BY created_at, id')) as Row[];
      return rows.map(toRequest);
    });
  }

  transition(id: string, change: StatusChange, audit: AuditInput): Promise<ErasureRequest> {
    return settle(() => {
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

  updateTables(id: string, tables: readonly TableProgress[]): Promise<void> {
    return settle(() => {
      this.transaction(() => this.db.run('UPDATE erasure_requests SET tables = ?, updated_at = ? WHERE id = ?', [JSON.stringify(tables), new Date().toISOString(), id]));
    });
  }

  erasedPseudonyms(context: string): Promise<ReadonlySet<string>> {
    return settle(() => {
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
    return settle(() => {
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

  lifts(): Promise<SuppressionLift[]> {
    return settle(() =>
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
    return settle(() => {
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
    return settle(() => {
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
    return { ...entry, previousHash, hash };
  }

  private transaction<T>(work: () => T): T {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const result = work();
      this.db.exec('COMMIT');
      return result;
    } catch (error) {
      this.db.exec('ROLLBACK');
      throw error;
    }
  }
}

function toRequest(row: Row): ErasureRequest {
  const text = (name: string): string | undefined => (row[name] === null || row[name] === undefined ? undefined : String(row[name]));
  const certificate = text('certificate');
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
  };
}

function removeStaleLock(file: string): void {
  const lock = `${file}.lock`;
  try {
    if (Date.now() - statSync(lock).mtimeMs > STALE_LOCK_MS) rmSync(lock, { recursive: true, force: true });
  } catch {
    // no lock: nothing to do
  }
}

/** The ledger's work is synchronous (one local file); the interface is asynchronous for networked stores. A throw rejects. */
function settle<T>(work: () => T): Promise<T> {
  return new Promise<T>((resolve) => {
    resolve(work());
  });
}
