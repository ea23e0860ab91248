/**
 * Where the Spark erasure job (spark-udfs/src/spark_udfs/erasure/job.py) runs: locally with spark-submit in
 * local mode (localRunner.ts, the embedded default) or as an EMR step (emrRunner.ts). A runner must be able
 * to re-attach to a run it started before the service restarted, so a run is named by its runId and
 * everything else (order, certificate, process or step) is found from it.
 */

import type { TableProgress } from './ledger.ts';

/** The job's input: pseudonyms only, never identifiers. Matches parse_order in the job. */
export interface ErasureOrder {
  readonly runId: string;
  readonly requestIds: readonly string[];
  readonly subjects: readonly { readonly context: string; readonly pseudonyms: readonly string[] }[];
  readonly tables: readonly { readonly name: string; readonly columns: Readonly<Record<string, string>> }[];
  readonly catalog: Readonly<Record<string, string>>;
  readonly orphanGraceSeconds: number;
  readonly refs: 'drop' | 'move-tags';
}

export interface ErasureCertificate {
  readonly result: 'verified' | 'failed';
  readonly runId: string;
  readonly tables: readonly { readonly table: string; readonly verification: { readonly result: string } }[];
  readonly [field: string]: unknown;
}

export type RunOutcome =
  | { readonly kind: 'completed'; readonly certificate: ErasureCertificate }
  /** The job did not produce a certificate: why, without values (exit code, EMR failure reason). */
  | { readonly kind: 'crashed'; readonly reason: string };

/** Per-table states the job reports while it runs (table names only). */
export type ProgressListener = (tables: readonly TableProgress[]) => void;

export interface ErasureRunner {
  readonly description: string;
  /** Runs the order, or re-attaches to the run of this runId if it was started before; resolves when it ends. */
  run(order: ErasureOrder, onProgress?: ProgressListener): Promise<RunOutcome>;
}

/** Progress JSON as the job writes it, or undefined when it is not (yet) readable. */
export function parseProgress(text: string | undefined): TableProgress[] | undefined {
  if (!text) return undefined;
  try {
    const parsed = JSON.parse(text) as unknown;
    if (!Array.isArray(parsed)) return undefined;
    return parsed.filter(
      (t): t is TableProgress => typeof t === 'object' && t !== null && typeof (t as TableProgress).table === 'string' && ['pending', 'running', 'verified', 'failed'].includes((t as TableProgress).status),
    );
  } catch {
    return undefined;
  }
}
