/**
 * Where the service's request, value and erasure metrics go. The core records each event once, through
 * ServiceMetrics; the transport decides which sinks listen: the server scrapes the Prometheus registry
 * at /metrics, a Lambda adds the CloudWatch EMF sink (emf.ts) and flushes it after each invocation.
 * Every label a sink receives is already bounded (route templates, methods, statuses, operations,
 * configured contexts or "other", outcomes, registered table names): never a value or anything a caller chose.
 */

/** One finished request. */
export interface RequestMeasurement {
  /** A route template (or 'unmatched', 'unread-body', 'unread-request'), never the raw path. */
  readonly route: string;
  readonly method: string;
  readonly status: number;
  readonly seconds: number;
}

/** How one erasure run ended: its certificate verified, it certified a failed verification, or it left no certificate. */
export type ErasureRunOutcome = 'verified' | 'unverified' | 'crashed';

export type ValueOperation = 'pseudonymize' | 'reidentify' | 'rewrap';

export interface MetricsSink {
  request(measurement: RequestMeasurement): void;
  /** `context` is a context of the policy file or "other". */
  values(operation: ValueOperation, context: string, count: number): void;
  /** `rowsDeleted` by registered table name, from the certificate (empty when there is none). */
  erasureRun(outcome: ErasureRunOutcome, seconds: number, rowsDeleted: ReadonlyMap<string, number>): void;
}
