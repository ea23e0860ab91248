/**
 * Prometheus metrics on a registry of the service's own. Labels are route templates, methods,
 * statuses, operations, configured context and table names, request states and run outcomes: never
 * values, pseudonyms, request ids or anything a caller chose. The core records through ServiceMetrics
 * once; the transport adds sinks (sink.ts), e.g. CloudWatch EMF on Lambda, that hear the same events.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ERASURE_STATUSES, type ErasureLedger, type ErasureStatus } from '../erasure/ledger.ts';
import type { ErasureRunOutcome, MetricsSink, RequestMeasurement, ValueOperation } from './sink.ts';

export type { ErasureRunOutcome } from './sink.ts';

export interface MetricSources {
  cache(): { hits: number; misses: number; entries: number };
  keyring(): { loaded: boolean; activeVersion: number | undefined };
  /** The erasure ledger when erasure is configured: requests by state and the oldest open one are read from it per scrape. */
  erasureLedger?(): Pick<ErasureLedger, 'list'> | undefined;
}

/** What the erasure worker reports about its runs (the ledger-derived gauges are in ServiceMetrics). */
export class ErasureMetrics {
  private readonly runs: Counter;
  private readonly failures: Counter<'outcome'>;
  private readonly duration: Histogram;
  private readonly rowsDeleted: Counter<'table'>;

  constructor(registers: Registry[], private readonly sinks: readonly MetricsSink[] = []) {
    this.runs = new Counter({ name: 'pseudo_erasure_runs_total', help: 'Erasure runs finished, whatever their outcome', registers });
    this.failures = new Counter({
      name: 'pseudo_erasure_run_failures_total',
      help: 'Erasure runs that did not verify: outcome "unverified" (the certificate says a table still holds a subject) or "crashed" (no certificate)',
      labelNames: ['outcome'],
      registers,
    });
    this.duration = new Histogram({
      name: 'pseudo_erasure_run_duration_seconds',
      help: 'Time from a run started (or resumed) to its outcome',
      // Spark jobs: from a minute on a small local table to hours on EMR.
      buckets: [10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14_400, 28_800],
      registers,
    });
    this.rowsDeleted = new Counter({ name: 'pseudo_erasure_rows_deleted_total', help: 'Rows deleted by erasure runs, by registered table', labelNames: ['table'], registers });
  }

  /** `rowsDeleted` by registered table name, from the certificate (empty when there is none). */
  recordRun(outcome: ErasureRunOutcome, seconds: number, rowsDeleted: ReadonlyMap<string, number>): void {
    this.runs.inc();
    if (outcome !== 'verified') this.failures.inc({ outcome });
    this.duration.observe(seconds);
    for (const [table, rows] of rowsDeleted) this.rowsDeleted.inc({ table }, rows);
    for (const sink of this.sinks) sink.erasureRun(outcome, seconds, rowsDeleted);
  }
}

export interface ErasureSnapshot {
  readonly byState: Readonly<Record<ErasureStatus, number>>;
  /** createdAt of the oldest request still received or running, in ms */
  readonly oldestOpenMs: number | undefined;
}

/** Requests by state and the oldest open one, from the ledger (also read by the erasure step function for its EMF gauges). */
export async function readErasureSnapshot(ledger: Pick<ErasureLedger, 'list'>): Promise<ErasureSnapshot> {
  const byState: Record<ErasureStatus, number> = { received: 0, running: 0, verified: 0, failed: 0 };
  let oldestOpenMs: number | undefined;
  for (const status of ERASURE_STATUSES) {
    const requests = await ledger.list(status);
    byState[status] = requests.length;
    if (status !== 'received' && status !== 'running') continue;
    for (const request of requests) {
      const created = Date.parse(request.createdAt);
      if (oldestOpenMs === undefined || created < oldestOpenMs) oldestOpenMs = created;
    }
  }
  return { byState, oldestOpenMs };
}

/** Requests by state from the ledger. Both ledger gauges collect at once in a scrape, so the read in flight serves both. */
function erasureSnapshots(source: () => Pick<ErasureLedger, 'list'> | undefined): () => Promise<ErasureSnapshot | undefined> {
  let inFlight: Promise<ErasureSnapshot | undefined> | undefined;
  const read = async (): Promise<ErasureSnapshot | undefined> => {
    const ledger = source();
    if (!ledger) return undefined;
    try {
      return await readErasureSnapshot(ledger);
    } catch {
      // A ledger that cannot answer leaves these gauges out of this scrape rather than failing /metrics.
      return undefined;
    }
  };
  return () => {
    inFlight ??= read().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  };
}

export class ServiceMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'route' | 'method' | 'status'>;
  private readonly duration: Histogram<'route' | 'method'>;
  private readonly values: Counter<'operation' | 'context'>;
  /** Sinks the transport added; the Prometheus registry above always records. */
  private readonly sinks: MetricsSink[] = [];
  readonly keyringRefreshFailures: Counter;
  readonly erasure: ErasureMetrics;

  constructor(sources: MetricSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'pseudo_' });
    this.requests = new Counter({ name: 'pseudo_http_requests_total', help: 'HTTP requests by route template and status', labelNames: ['route', 'method', 'status'], registers });
    this.duration = new Histogram({
      name: 'pseudo_http_request_duration_seconds',
      help: 'Time from request parsed to response ready',
      labelNames: ['route', 'method'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.values = new Counter({ name: 'pseudo_values_processed_total', help: 'Values pseudonymized or reidentified', labelNames: ['operation', 'context'], registers });
    this.keyringRefreshFailures = new Counter({ name: 'pseudo_keyring_refresh_failures_total', help: 'Keyring refreshes that failed (the old keys stay in use)', registers });
    new Gauge({
      name: 'pseudo_cache_hit_ratio',
      help: 'Share of pseudonymize lookups served from the cache since start',
      registers,
      collect() {
        const { hits, misses } = sources.cache();
        this.set(hits + misses === 0 ? 0 : hits / (hits + misses));
      },
    });
    new Gauge({ name: 'pseudo_cache_hits', help: 'Pseudonymize cache hits since start', registers, collect() { this.set(sources.cache().hits); } });
    new Gauge({ name: 'pseudo_cache_misses', help: 'Pseudonymize cache misses since start', registers, collect() { this.set(sources.cache().misses); } });
    new Gauge({ name: 'pseudo_cache_entries', help: 'Entries in the pseudonymize cache', registers, collect() { this.set(sources.cache().entries); } });
    new Gauge({ name: 'pseudo_keyring_loaded', help: '1 when an active key version is loaded', registers, collect() { this.set(sources.keyring().loaded ? 1 : 0); } });
    new Gauge({ name: 'pseudo_keyring_active_version', help: 'The active key version', registers, collect() { this.set(sources.keyring().activeVersion ?? 0); } });
    this.erasure = new ErasureMetrics(registers, this.sinks);
    const erasureSnapshot = erasureSnapshots(() => sources.erasureLedger?.());
    new Gauge({
      name: 'pseudo_erasure_requests',
      help: 'Erasure requests in the ledger by state (received, running, verified, failed)',
      labelNames: ['state'],
      registers,
      async collect() {
        const snapshot = await erasureSnapshot();
        if (!snapshot) return;
        for (const state of ERASURE_STATUSES) this.set({ state }, snapshot.byState[state]);
      },
    });
    new Gauge({
      name: 'pseudo_erasure_oldest_open_request_age_seconds',
      help: 'Age of the oldest erasure request not yet verified or failed (GDPR Art. 12(3): one month to act); 0 when none is open',
      registers,
      async collect() {
        const snapshot = await erasureSnapshot();
        if (!snapshot) return;
        this.set(snapshot.oldestOpenMs === undefined ? 0 : Math.max(0, (Date.now() - snapshot.oldestOpenMs) / 1000));
      },
    });
  }

  /** Another place the same events go (the transport's choice: Lambda adds CloudWatch EMF). */
  addSink(sink: MetricsSink): void {
    this.sinks.push(sink);
  }

  recordRequest(measurement: RequestMeasurement): void {
    const { route, method } = measurement;
    this.requests.inc({ route, method, status: String(measurement.status) });
    this.duration.observe({ route, method }, measurement.seconds);
    for (const sink of this.sinks) sink.request(measurement);
  }

  /** `context` must already be a context of the policy file or "other". */
  countValues(operation: ValueOperation, context: string, count: number): void {
    this.values.inc({ operation, context }, count);
    for (const sink of this.sinks) sink.values(operation, context, count);
  }
}
