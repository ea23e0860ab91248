/**
 * The load scenarios, as data: endpoints, batch shapes, stages and thresholds. Both the k6 scripts in this
 * folder (the tool users run, against a local server or the deployed stack) and the local runner
 * (load-tests/k6-local.ts, autocannon, since k6 cannot be installed here) build their runs from this module,
 * so it imports nothing from k6 and nothing from Node.
 *
 * Rates are requests per second at the target of each stage; every request carries a 900-value batch, the
 * Spark client's pattern (spark-udfs sends 900 values per call). Thresholds are the targets of issue 12:
 * p99 under 50 ms and no failed request.
 */

/** Values per request: what the Spark client sends. */
export const BATCH_SIZE = 900;
/** The context the batch routes use; the compatibility route uses the server's PSEUDO_COMPAT_CONTEXT (vin by default). */
export const CONTEXT = 'vin';
/** Distinct batches a run cycles through (the server's cache sees repeats, as a warm deployment would). */
export const BATCH_COUNT = 50;

export type EndpointName = 'pseudonymize' | 'reidentify' | 'compat';

export interface Endpoint {
  readonly method: 'POST';
  readonly path: string;
  /** Which API key calls it: reidentify needs a key with the reidentify role. */
  readonly key: 'pseudonymize' | 'reidentify';
}

export const ENDPOINTS: Readonly<Record<EndpointName, Endpoint>> = {
  pseudonymize: { method: 'POST', path: '/v1/pseudonymize', key: 'pseudonymize' },
  reidentify: { method: 'POST', path: '/v1/reidentify', key: 'reidentify' },
  compat: { method: 'POST', path: '/pseudonymization', key: 'pseudonymize' },
};

/** The request body of each endpoint for one batch (reidentify takes the batch's pseudonyms). */
export function requestBody(endpoint: EndpointName, batch: readonly string[]): string {
  switch (endpoint) {
    case 'pseudonymize':
      return JSON.stringify({ context: CONTEXT, values: batch });
    case 'reidentify':
      return JSON.stringify({ context: CONTEXT, pseudonyms: batch });
    case 'compat':
      return JSON.stringify({ identifiers: batch });
  }
}

/** Batch `index` of BATCH_SIZE VIN-like identifiers (17 characters, no I, O, Q), the same on every run. */
export function batchValues(index: number, size = BATCH_SIZE): string[] {
  const alphabet = 'ABCDEFGHJKLMNPRSTUVWXYZ0123456789';
  let state = (index + 1) * 2_654_435_761;
  const next = (): number => (state = (Math.imul(state, 1_103_515_245) + 12_345) >>> 0);
  const out: string[] = [];
  for (let i = 0; i < size; i++) {
    let value = '';
    for (let c = 0; c < 17; c++) value += alphabet.charAt(next() % alphabet.length);
    out.push(value);
  }
  return out;
}

/** A k6 stage of an arrival-rate executor: reach `target` requests/s over `seconds`, linearly. */
export interface Stage {
  readonly seconds: number;
  readonly target: number;
}

export interface Thresholds {
  readonly p99Ms: number;
  /** Share of failed requests (any status but 2xx, or no answer) allowed. */
  readonly maxErrorRate: number;
}

export const TARGET_THRESHOLDS: Thresholds = { p99Ms: 50, maxErrorRate: 0 };

export type ScenarioName = 'pseudonymize' | 'reidentify' | 'compat' | 'mixed' | 'spike' | 'soak';

export interface Scenario {
  readonly name: ScenarioName;
  readonly description: string;
  /** Endpoints and their weights; a request picks one in proportion. */
  readonly mix: readonly { readonly endpoint: EndpointName; readonly weight: number }[];
  /** Starting rate, then the stages (a constant load is one stage at the starting rate). */
  readonly startRate: number;
  readonly stages: readonly Stage[];
  readonly thresholds: Thresholds;
  /** Report the server's memory growth over the run (the soak). */
  readonly watchMemory: boolean;
}

export interface ScenarioOptions {
  /** Seconds of each constant scenario. */
  readonly seconds: number;
  /** Minutes of the soak (the target: 10). */
  readonly soakMinutes: number;
}

export const DEFAULT_OPTIONS: ScenarioOptions = { seconds: 30, soakMinutes: 1 };

const STEADY_RATE = 1000;

function constant(name: ScenarioName, description: string, mix: Scenario['mix'], rate: number, seconds: number, watchMemory = false): Scenario {
  return { name, description, mix, startRate: rate, stages: [{ seconds, target: rate }], thresholds: TARGET_THRESHOLDS, watchMemory };
}

export function scenarios(options: ScenarioOptions = DEFAULT_OPTIONS): Scenario[] {
  const { seconds } = options;
  return [
    constant('pseudonymize', `POST /v1/pseudonymize, ${BATCH_SIZE}-value batches at ${STEADY_RATE} requests/s`, [{ endpoint: 'pseudonymize', weight: 1 }], STEADY_RATE, seconds),
    constant('reidentify', `POST /v1/reidentify of ${BATCH_SIZE} pseudonyms at 200 requests/s (stewards, not pipelines)`, [{ endpoint: 'reidentify', weight: 1 }], 200, seconds),
    constant('compat', `POST /pseudonymization (the replaced sample's route), ${BATCH_SIZE} identifiers at 500 requests/s`, [{ endpoint: 'compat', weight: 1 }], 500, seconds),
    constant(
      'mixed',
      `steady mix at ${STEADY_RATE} requests/s: 80 % pseudonymize, 10 % compatibility, 10 % reidentify`,
      [
        { endpoint: 'pseudonymize', weight: 8 },
        { endpoint: 'compat', weight: 1 },
        { endpoint: 'reidentify', weight: 1 },
      ],
      STEADY_RATE,
      seconds,
    ),
    {
      name: 'spike',
      description: 'pseudonymize at 200 requests/s, a spike to 2,000 within 2 s held for a third of the run, back to 200',
      mix: [{ endpoint: 'pseudonymize', weight: 1 }],
      startRate: 200,
      stages: [
        { seconds: Math.max(1, Math.round(seconds / 3)), target: 200 },
        { seconds: 2, target: 2000 },
        { seconds: Math.max(1, Math.round(seconds / 3)), target: 2000 },
        { seconds: 2, target: 200 },
        { seconds: Math.max(1, Math.round(seconds / 3)), target: 200 },
      ],
      thresholds: TARGET_THRESHOLDS,
      watchMemory: false,
    },
    constant('soak', `pseudonymize at ${STEADY_RATE} requests/s for ${options.soakMinutes} min, the server's RSS sampled`, [{ endpoint: 'pseudonymize', weight: 1 }], STEADY_RATE, Math.round(options.soakMinutes * 60), true),
  ];
}

/** The endpoint of request number `n` of a scenario: the mix, spread evenly (weights 8:1:1 give 8 of one, then one each). */
export function endpointAt(scenario: Scenario, n: number): EndpointName {
  const total = scenario.mix.reduce((sum, entry) => sum + entry.weight, 0);
  let slot = n % total;
  for (const entry of scenario.mix) {
    if (slot < entry.weight) return entry.endpoint;
    slot -= entry.weight;
  }
  return scenario.mix[0]!.endpoint;
}

/**
 * k6's options for one scenario (a ramping-arrival-rate executor and the thresholds), as a plain object: the
 * k6 script types it as k6's Options.
 */
export function k6Options(scenario: Scenario) {
  const peak = Math.max(scenario.startRate, ...scenario.stages.map((stage) => stage.target));
  return {
    scenarios: {
      [scenario.name]: {
        executor: 'ramping-arrival-rate' as const,
        startRate: scenario.startRate,
        timeUnit: '1s',
        // At 50 ms a request, a VU serves 20 requests/s; room for twice the p99 target.
        preAllocatedVUs: Math.max(2, Math.ceil(peak / 20)),
        maxVUs: Math.max(4, Math.ceil(peak / 10)),
        stages: scenario.stages.map((stage) => ({ duration: `${stage.seconds}s`, target: stage.target })),
      },
    },
    thresholds: {
      http_req_duration: [`p(99)<${scenario.thresholds.p99Ms}`],
      http_req_failed: [scenario.thresholds.maxErrorRate === 0 ? 'rate==0' : `rate<${scenario.thresholds.maxErrorRate}`],
    },
    // Bodies of 900 values: keep k6 from holding every response.
    discardResponseBodies: true,
  };
}
