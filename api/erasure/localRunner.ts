/**
 * Runs the erasure job on this machine: `python -m spark_udfs.erasure.job` (Spark in local mode), one folder
 * per run under the work directory with order.json, certificate.json, job.pid and job.log.
 *
 * Re-attaching after a service restart: a certificate already written is the outcome; a job process still
 * alive (job.pid) is waited for; otherwise the job runs again, which is safe because every step of it is
 * idempotent (deleting rows that are gone, expiring, removing orphans, verifying).
 *
 * The job's local Spark needs the Iceberg runtime and SQLite JDBC jars; the Python package names no folder of a
 * checkout, so the configured folder (PSEUDO_ERASURE_SPARK_JARS) is passed to the job as SPARK_UDFS_JARS, and a
 * missing folder is refused when the runner is built (at start-up), not found out by the first erasure run.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { parseContract } from '../contracts/contracts.ts';
import { ConfigError } from '../errors.ts';
import { outcomeOfCertificate, parseProgress, type ErasureOrder, type ErasureRunner, type ProgressListener, type RunOutcome } from './runner.ts';

export interface LocalRunnerOptions {
  readonly python: string;
  readonly sparkMaster: string;
  /** The folder of the jars the job's local Spark loads (the job reads it as SPARK_UDFS_JARS). */
  readonly jars: string;
  readonly workDir: string;
}

export class LocalErasureRunner implements ErasureRunner {
  readonly description: string;

  constructor(private readonly options: LocalRunnerOptions) {
    if (!isFolder(options.jars)) throw new ConfigError('PSEUDO_ERASURE_SPARK_JARS: the local erasure runner\'s jars folder does not exist (scripts/setup.sh fetches the jars into .cache/jars)');
    this.description = `local spark-submit (${options.sparkMaster})`;
  }

  async run(order: ErasureOrder, onProgress?: ProgressListener): Promise<RunOutcome> {
    const folder = join(this.options.workDir, order.runId);
    const certificateFile = join(folder, 'certificate.json');
    const progressFile = join(folder, 'progress.json');
    const pidFile = join(folder, 'job.pid');
    const watch = watchProgress(progressFile, onProgress);
    mkdirSync(folder, { recursive: true, mode: 0o700 });
    const finished = readCertificate(certificateFile);
    if (finished !== undefined) return watch.stop(outcomeOfCertificate(finished, order));
    const previous = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : undefined;
    if (previous !== undefined && isAlive(previous)) {
      await waitForExit(previous);
      const certificate = readCertificate(certificateFile);
      return watch.stop(certificate !== undefined ? outcomeOfCertificate(certificate, order) : { kind: 'crashed', reason: 'the job started before the restart ended without a certificate' });
    }
    const orderFile = join(folder, 'order.json');
    writeFileSync(orderFile, JSON.stringify(parseContract('erasure-order', order)), { mode: 0o600 });
    const log = openSync(join(folder, 'job.log'), 'a', 0o600);
    const child = spawn(this.options.python, ['-m', 'spark_udfs.erasure.job', '--order', orderFile, '--certificate', certificateFile, '--progress', progressFile, '--master', this.options.sparkMaster], {
      stdio: ['ignore', log, log],
      env: { ...process.env, PYSPARK_PYTHON: this.options.python, SPARK_UDFS_JARS: this.options.jars },
    });
    closeSync(log);
    if (child.pid !== undefined) writeFileSync(pidFile, String(child.pid));
    const code = await new Promise<number | null>((resolve) => {
      child.on('exit', (exitCode) => {
        resolve(exitCode);
      });
      child.on('error', () => {
        resolve(null);
      });
    });
    const certificate = readCertificate(certificateFile);
    if (certificate !== undefined) return watch.stop(outcomeOfCertificate(certificate, order));
    return watch.stop({ kind: 'crashed', reason: code === null ? `the job could not be started (${this.options.python})` : `the job exited with code ${code} without a certificate (see ${join(folder, 'job.log')})` });
  }
}

/** Reads the job's progress file every second and reports changes, until the run ends. */
function watchProgress(file: string, onProgress: ProgressListener | undefined): { stop: (outcome: RunOutcome) => RunOutcome } {
  let last = '';
  const check = (): void => {
    let text: string | undefined;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      return; // not written yet
    }
    const tables = parseProgress(text);
    if (tables && text !== last) {
      last = text;
      onProgress?.(tables);
    }
  };
  const timer = onProgress ? setInterval(check, 1000) : undefined;
  timer?.unref();
  return {
    stop: (outcome) => {
      if (timer) clearInterval(timer);
      check();
      return outcome;
    },
  };
}

/** The certificate's text, or undefined when there is none yet (the job writes it whole, at the end). */
function readCertificate(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Alive and still our job (a recycled pid is someone else's process). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('spark_udfs.erasure.job');
  } catch {
    return false;
  }
}

async function waitForExit(pid: number): Promise<void> {
  while (isAlive(pid)) await new Promise((resolve) => setTimeout(resolve, 1000));
}
