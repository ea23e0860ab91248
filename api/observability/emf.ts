/**
 * The metrics sink for Lambda: CloudWatch Embedded Metric Format lines on stdout, written by the Metrics
 * utility of Powertools for AWS Lambda, which CloudWatch Logs turns into metrics (no /metrics to scrape
 * behind API Gateway). Records are buffered during an invocation and flushed by the adapter at its end:
 * one EMF document per dimension set, since every metric of a document applies to all of its dimension
 * sets (a value count must not be counted again under a route's dimensions).
 *
 * Names (CloudWatch style) against the Prometheus ones on the server:
 *   HttpRequests (Count), HttpRequestDuration (Milliseconds)  route, method, status   pseudo_http_requests_total, pseudo_http_request_duration_seconds
 *   ValuesProcessed (Count)                                   operation, context      pseudo_values_processed_total
 *   ErasureRuns, ErasureRunFailures (Count), ErasureRunDuration (Seconds)  outcome   pseudo_erasure_runs_total, pseudo_erasure_run_failures_total, pseudo_erasure_run_duration_seconds
 *   ErasureRowsDeleted (Count)                                table                   pseudo_erasure_rows_deleted_total
 *   ErasureRequests (Count, a gauge)                          state                   pseudo_erasure_requests
 *   OldestOpenRequestAgeSeconds (Seconds, a gauge)            (service only)          pseudo_erasure_oldest_open_request_age_seconds
 * The two gauges are read from the ledger and written by the erasure step function at each invocation (the
 * platform's alarm watches the oldest open request's age against GDPR's month); never a request id or subject.
 * Powertools adds the `service` dimension (PSEUDO_METRICS_SERVICE) to each.
 */
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { ERASURE_STATUSES } from '../erasure/ledger.ts';
import type { ErasureSnapshot } from './metrics.ts';
import type { ErasureRunOutcome, MetricsSink, RequestMeasurement, ValueOperation } from './sink.ts';

export const EMF_METRIC_NAMES = {
  requests: 'HttpRequests',
  duration: 'HttpRequestDuration',
  values: 'ValuesProcessed',
  erasureRuns: 'ErasureRuns',
  erasureRunFailures: 'ErasureRunFailures',
  erasureRunDuration: 'ErasureRunDuration',
  erasureRowsDeleted: 'ErasureRowsDeleted',
  erasureRequests: 'ErasureRequests',
  oldestOpenRequestAge: 'OldestOpenRequestAgeSeconds',
} as const;

type Unit = (typeof MetricUnit)[keyof typeof MetricUnit];

interface Group {
  readonly dimensions: Readonly<Record<string, string>>;
  readonly metrics: { name: string; unit: Unit; value: number }[];
}

export class EmfMetricsSink implements MetricsSink {
  private readonly emitter: Metrics;
  /** Buffered records by dimension set (its JSON), in first-seen order. */
  private groups = new Map<string, Group>();

  constructor(options: { readonly namespace: string; readonly service: string }) {
    this.emitter = new Metrics({ namespace: options.namespace, serviceName: options.service });
  }

  request(measurement: RequestMeasurement): void {
    const group = this.group({ route: measurement.route, method: measurement.method, status: String(measurement.status) });
    group.metrics.push({ name: EMF_METRIC_NAMES.requests, unit: MetricUnit.Count, value: 1 });
    group.metrics.push({ name: EMF_METRIC_NAMES.duration, unit: MetricUnit.Milliseconds, value: measurement.seconds * 1000 });
  }

  values(operation: ValueOperation, context: string, count: number): void {
    this.group({ operation, context }).metrics.push({ name: EMF_METRIC_NAMES.values, unit: MetricUnit.Count, value: count });
  }

  erasureRun(outcome: ErasureRunOutcome, seconds: number, rowsDeleted: ReadonlyMap<string, number>): void {
    const runs = this.group({ outcome });
    runs.metrics.push({ name: EMF_METRIC_NAMES.erasureRuns, unit: MetricUnit.Count, value: 1 });
    runs.metrics.push({ name: EMF_METRIC_NAMES.erasureRunFailures, unit: MetricUnit.Count, value: outcome === 'verified' ? 0 : 1 });
    runs.metrics.push({ name: EMF_METRIC_NAMES.erasureRunDuration, unit: MetricUnit.Seconds, value: seconds });
    for (const [table, rows] of rowsDeleted) this.group({ table }).metrics.push({ name: EMF_METRIC_NAMES.erasureRowsDeleted, unit: MetricUnit.Count, value: rows });
  }

  /** The ledger's gauges as read at `nowMs`: a count per state (every state, zeros included) and the oldest open request's age (0 when none is open). */
  erasureRequests(snapshot: ErasureSnapshot, nowMs: number): void {
    for (const state of ERASURE_STATUSES) this.group({ state }).metrics.push({ name: EMF_METRIC_NAMES.erasureRequests, unit: MetricUnit.Count, value: snapshot.byState[state] });
    const age = snapshot.oldestOpenMs === undefined ? 0 : Math.max(0, (nowMs - snapshot.oldestOpenMs) / 1000);
    this.group({}).metrics.push({ name: EMF_METRIC_NAMES.oldestOpenRequestAge, unit: MetricUnit.Seconds, value: age });
  }

  /** Writes what this invocation recorded, one EMF line per dimension set, and starts afresh. */
  flush(): void {
    const groups = this.groups;
    this.groups = new Map();
    for (const { dimensions, metrics } of groups.values()) {
      for (const [name, value] of Object.entries(dimensions)) this.emitter.addDimension(name, value);
      for (const { name, unit, value } of metrics) this.emitter.addMetric(name, unit, value);
      this.emitter.publishStoredMetrics();
    }
  }

  private group(dimensions: Record<string, string>): Group {
    const key = JSON.stringify(dimensions);
    let group = this.groups.get(key);
    if (!group) {
      group = { dimensions, metrics: [] };
      this.groups.set(key, group);
    }
    return group;
  }
}
