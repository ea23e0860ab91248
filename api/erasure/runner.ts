/**
 * Where the Spark erasure job (spark-udfs/src/spark_udfs/erasure/job.py) runs: locally with spark-submit in
 * local mode (localRunner.ts, the embedded default) or as an EMR step (emrRunner.ts). A runner must be able
 * to re-attach to a run it started before the service restarted, so a run is named by its runId and
 * everything else (order, certificate, process or step) is found from it.
 */

import { checkContract, ContractError, parseContractJson, type ErasureCertificate, type ErasureOrder } from '../contracts/contracts.ts';
import type { TableProgress } from './ledger.ts';

/** The order, certificate and progress are the contracts in contracts/ (checked by api/contracts/contracts.ts). */
export type { ErasureCertificate, ErasureOrder } from '../contracts/contracts.ts';

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

/** One look at a submitted run: still running (with the job's per-table progress, if any yet), or ended. */
export type RunCheck =
  | { readonly kind: 'running'; readonly progress: readonly TableProgress[] | undefined }
  /** `seconds`: the run's duration as the runner measured it, when it knows. */
  | { readonly kind: 'ended'; readonly outcome: RunOutcome; readonly seconds: number | undefined };

/**
 * A runner whose run can also be driven in short stateless calls (a scheduled Lambda): `submit` starts the run
 * and returns its handle at once (the same handle again for a run already submitted), `check` looks once.
 */
export interface SteppedErasureRunner extends ErasureRunner {
  submit(order: ErasureOrder): Promise<string>;
  check(runId: string, handle: string): Promise<RunCheck>;
}

/**
 * Progress JSON as the job writes it, checked against contracts/erasure-progress.schema.json, or undefined when
 * there is none yet or it does not match (progress is only shown; the certificate decides the outcome).
 */
export function parseProgress(text: string | undefined): readonly TableProgress[] | undefined {
  if (!text) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  const checked = checkContract('erasure-progress', parsed);
  return checked.ok ? checked.value : undefined;
}

/**
 * The run's outcome from the certificate text the job wrote (whole, at the end): completed when it matches
 * contracts/erasure-certificate.schema.json and is this run's, otherwise crashed with the reason, which names
 * the field at fault (e.g. a snapshot id that is not an exact integer string) and never a value.
 */
export function outcomeOfCertificate(text: string, order: Pick<ErasureOrder, 'runId'>): RunOutcome {
  let certificate: ErasureCertificate;
  try {
    certificate = parseContractJson('erasure-certificate', text);
  } catch (error) {
    if (error instanceof ContractError) return { kind: 'crashed', reason: `the job's certificate does not match the contract: ${error.message}` };
    throw error;
  }
  if (certificate.runId !== order.runId) return { kind: 'crashed', reason: "the job's certificate is of another run" };
  return { kind: 'completed', certificate };
}
