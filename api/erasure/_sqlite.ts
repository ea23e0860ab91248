/**
 * Opens SQLite databases through node-sqlite3-wasm, loaded on first use: the module instantiates its
 * WebAssembly at import and locates the .wasm file next to itself, so it stays outside the esbuild bundles
 * (external) and out of processes that never open a ledger (the Lambda handler, the CLI's key commands).
 *
 * node-sqlite3-wasm's VFS locks a database by creating a `<file>.lock` directory (for reads too) and removing it
 * when SQLite unlocks. A process killed while it holds the lock leaves the directory behind, and nothing in it
 * says who made it, so every later open answers "database is locked". OwnerLock is the record that is missing:
 * a `<file>.owner` file holding the pid (its start time, and the thread) of the one process inside the database. Every use
 * of a file goes through it, so a `<file>.lock` directory found while holding the owner file was left by a dead
 * process and can go; an owner file whose process is gone (or is this process: it never holds across calls) is
 * broken at once instead of after a timeout.
 */
import { linkSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { threadId } from 'node:worker_threads';
import type { Database } from 'node-sqlite3-wasm';

interface SqliteModule { Database: typeof Database }
let loaded: SqliteModule | undefined;

export function openSqlite(file: string, options?: { readOnly?: boolean; fileMustExist?: boolean }): Database {
  loaded ??= createRequire(import.meta.url)('node-sqlite3-wasm') as SqliteModule;
  return new loaded.Database(file, options);
}

export type { Database, SQLiteValue } from 'node-sqlite3-wasm';

/** An owner file younger than this without readable content is still being written by its creator. */
const UNWRITTEN_OWNER_GRACE_MS = 1000;

/** Another live process held the owner file for the whole wait. */
export class OwnerLockBusy extends Error {}

/**
 * One process at a time inside a file, recorded as `<pid> <start time> <thread id>` in `<path>`. Held only for the length
 * of one synchronous piece of work, so a wait is another process's transaction (milliseconds).
 */
export class OwnerLock {
  private depth = 0;

  constructor(
    readonly path: string,
    /** Runs each time the lock is taken: the holder clears what a killed holder left behind. */
    private readonly onAcquired: () => void,
  ) {}

  holdWhile<T>(work: () => T, waitMs = 5000): T {
    if (this.depth > 0) return work();
    this.acquire(Date.now() + waitMs);
    this.depth++;
    try {
      this.onAcquired();
      return work();
    } finally {
      this.depth--;
      rmSync(this.path, { force: true });
    }
  }

  private acquire(deadline: number): void {
    for (;;) {
      try {
        writeFileSync(this.path, selfIdentity(), { flag: 'wx', mode: 0o600 });
        return;
      } catch (error) {
        if (errorCode(error) !== 'EEXIST') throw error;
      }
      if (this.breakIfStale()) continue;
      if (Date.now() > deadline) throw new OwnerLockBusy(`${this.path} is held by a running process`);
      sleepSync(2);
    }
  }

  /** Removes the owner file when its process is gone; true when the file is gone (try again), false while it is held. */
  private breakIfStale(): boolean {
    let text: string;
    let stat: { ino: number; mtimeMs: number };
    try {
      stat = statSync(this.path);
      text = readFileSync(this.path, 'utf8');
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return true;
      throw error;
    }
    const owner = /^(\d+) (\d*)(?: (\d+))?$/.exec(text);
    if (!owner) {
      if (Date.now() - stat.mtimeMs < UNWRITTEN_OWNER_GRACE_MS) return false;
    } else if (isRunning(Number(owner[1]), owner[2] ?? '', owner[3] === undefined ? threadId : Number(owner[3]))) {
      return false;
    }
    // Move it aside and check it is still the file judged stale: another process may have broken it and taken the
    // lock in between, and that lock must stay.
    const aside = `${this.path}.stale-${process.pid}-${randomUUID()}`;
    try {
      renameSync(this.path, aside);
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return true;
      throw error;
    }
    if (statSync(aside).ino === stat.ino) {
      rmSync(aside, { force: true });
      return true;
    }
    try {
      linkSync(aside, this.path);
    } catch {
      // a third process took the free lock meanwhile: it holds it now
    }
    rmSync(aside, { force: true });
    return false;
  }
}

let identity: string | undefined;

function selfIdentity(): string {
  identity ??= `${process.pid} ${startTimeOf(process.pid) ?? ''} ${threadId}`;
  return identity;
}

/**
 * Whether the process that wrote an owner file still runs: alive, not a zombie, not a reused pid. Never this thread
 * (it holds only inside holdWhile); another thread of this process is taken as running.
 */
function isRunning(pid: number, startTime: string, ownerThread: number): boolean {
  // This pid: another thread of this process holds it, or an earlier process with the same pid (a restarted container) left it.
  if (pid === process.pid) return ownerThread !== threadId && startTime === (startTimeOf(pid) ?? '');
  try {
    process.kill(pid, 0);
  } catch (error) {
    if (errorCode(error) !== 'EPERM') return false;
  }
  const stat = procStat(pid);
  if (stat === undefined) return true; // no /proc (macOS): the pid is all there is
  if (stat.state === 'Z') return false;
  return startTime === '' || stat.startTime === startTime;
}

function startTimeOf(pid: number): string | undefined {
  return procStat(pid)?.startTime;
}

/** State and start time (clock ticks since boot) from /proc/<pid>/stat; the name in parentheses may hold spaces. */
function procStat(pid: number): { state: string; startTime: string } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const state = fields[0];
    const startTime = fields[19];
    return state !== undefined && startTime !== undefined ? { state, startTime } : undefined;
  } catch {
    return undefined;
  }
}

function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : undefined;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}
