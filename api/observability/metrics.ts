/**
 * Prometheus metrics on a registry of the service's own. Labels are route templates, methods,
 * statuses, operations and configured context names: never values or anything a caller chose.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface MetricSources {
  cache(): { hits: number; misses: number; entries: number };
  keyring(): { loaded: boolean; activeVersion: number | undefined };
}

export class ServiceMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'route' | 'method' | 'status'>;
  readonly duration: Histogram<'route' | 'method'>;
  readonly values: Counter<'operation' | 'context'>;
  readonly keyringRefreshFailures: Counter;

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
  }
}
