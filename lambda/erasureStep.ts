/**
 * The erasure worker as a scheduled Lambda (an EventBridge rule, every few minutes): each invocation advances
 * every open request one step (api/erasure/steps.ts) and returns; it never waits for an EMR step to end. The
 * state between invocations is in the DynamoDB ledger and the run's S3 folder, so invocations may land on any
 * instance, and overlapping ones move each request once.
 *
 * Needs erasure configured for a shared deployment: PSEUDO_ERASURE_REGISTRY_FILE (Glue tables),
 * PSEUDO_ERASURE_LEDGER=dynamodb and PSEUDO_ERASURE_RUNNER=emr; anything else is refused at start with the
 * setting named (config-invalid), logged as one JSON line (class, code, setting; never values) and thrown as a
 * value-free error naming the cause, like the API handler (lambda/_start.ts). The keyring is needed too: a run
 * erases each subject's pseudonyms under every key version loaded now.
 *
 * Each invocation also writes the ledger's gauges as EMF (emf.ts: ErasureRequests by state,
 * OldestOpenRequestAgeSeconds), the Lambda counterpart of the server's /metrics; the platform alarms on the age.
 */
import { loadConfig } from '../api/config/config.ts';
import { EmrErasureRunner } from '../api/erasure/emrRunner.ts';
import { advanceErasures, type ErasureStepParts, type ErasureStepSummary } from '../api/erasure/steps.ts';
import { ErasureWorker } from '../api/erasure/worker.ts';
import { ConfigError, errorMessage, KeyringError } from '../api/errors.ts';
import { EmfMetricsSink } from '../api/observability/emf.ts';
import { readErasureSnapshot } from '../api/observability/metrics.ts';
import { PseudonymizationService } from '../api/service.ts';
import { logStartFailure, startFailure } from './_start.ts';

/** The step's parts, and whether the keyring is loaded (it is refreshed in the background after a failed load). */
interface StepFunction extends ErasureStepParts {
  ready(): boolean;
  /** The runs' metrics as CloudWatch EMF lines, written at the end of each invocation (as the API handler does). */
  readonly metrics: EmfMetricsSink;
}

let partsPromise: Promise<StepFunction> | undefined;

async function start(): Promise<StepFunction> {
  const config = loadConfig();
  if (!config.erasure.registryFile) throw new ConfigError('PSEUDO_ERASURE_REGISTRY_FILE: required for the erasure step function');
  const runnerConfig = config.erasure.runner;
  if (runnerConfig.kind !== 'emr') throw new ConfigError('PSEUDO_ERASURE_RUNNER: the erasure step function submits EMR steps; set it to emr');
  // Every instance has its own disk: the ledger and the catalog must be shared stores (refused otherwise).
  const service = await PseudonymizationService.start(config, { sharedStoresOnly: true });
  const erasure = service.erasure;
  if (!erasure) throw new ConfigError('PSEUDO_ERASURE_REGISTRY_FILE: required for the erasure step function');
  const runner = new EmrErasureRunner(runnerConfig);
  const worker = new ErasureWorker(erasure.ledger, erasure.registry, erasure.suppression, service.policies, runner, config.erasure, service.logger, service.metrics.erasure, erasure.coverage);
  const metrics = new EmfMetricsSink(config.metrics);
  service.metrics.addSink(metrics);
  return { ledger: erasure.ledger, worker, runner, logger: service.logger, ready: () => service.ready, metrics };
}

/** The parts of this execution environment; a failed start is tried again at the next invocation. */
function parts(): Promise<StepFunction> {
  partsPromise ??= start().catch((error: unknown) => {
    partsPromise = undefined;
    throw error;
  });
  return partsPromise;
}

/** EventBridge's scheduled event carries nothing this needs: every call looks at the ledger. */
export async function erasureStepHandler(): Promise<ErasureStepSummary> {
  let running: StepFunction;
  try {
    running = await parts();
  } catch (error) {
    logStartFailure('the erasure step function', error);
    // The runtime logs what is thrown, message included: the original's could hold a path or a value.
    throw startFailure(error);
  }
  try {
    // Without keys a run cannot add the pseudonyms of versions created since filing: wait for the next call.
    if (!running.ready()) throw new KeyringError('the keyring is not loaded; no erasure step was taken', 'keyring-unavailable');
    const summary = await advanceErasures(running);
    running.logger.info({ submitted: summary.submitted, running: summary.running, finished: summary.finished }, 'erasure step done');
    return summary;
  } finally {
    // The gauges after every call, a failed one too: the oldest open request's age is what the alarm watches.
    await recordLedgerGauges(running);
    running.metrics.flush();
  }
}

/** Requests by state and the oldest open one's age, as read from the ledger now; a ledger that cannot answer leaves them out of this call. */
async function recordLedgerGauges(running: StepFunction): Promise<void> {
  try {
    running.metrics.erasureRequests(await readErasureSnapshot(running.ledger), Date.now());
  } catch (error) {
    running.logger.warn({ error: errorMessage(error) }, 'erasure request gauges not written: the ledger did not answer');
  }
}
