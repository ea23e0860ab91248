/**
 * The erasure worker's observable side: per-table progress that only moves forward (a fresh run, and a run
 * resumed after a restart whose job starts its report over), the log lines of a run, and the erasure metrics.
 *
 * The job is a scripted ErasureRunner (it reports progress and returns the certificate the Spark job would
 * write): what is tested is the worker between a runner and the real SQLite ledger. The runners themselves run
 * against Spark (spark-udfs/tests/test_erasure_service.py) and moto's EMR (emrRunner.test.ts).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import type { AuditInput, ErasureRequest, StatusChange, TableProgress } from '../../api/erasure/ledger.ts';
import { TableRegistry } from '../../api/erasure/registry.ts';
import { ErasureRequests } from '../../api/erasure/requests.ts';
import { parseContract } from '../../api/contracts/contracts.ts';
import type { ErasureCertificate, ErasureOrder, ErasureRunner, ProgressListener, RunOutcome } from '../../api/erasure/runner.ts';
import { SqliteErasureLedger } from '../../api/erasure/sqliteLedger.ts';
import { ErasureSuppression } from '../../api/erasure/suppression.ts';
import { ErasureWorker } from '../../api/erasure/worker.ts';
import { createLogger } from '../../api/observability/logger.ts';
import { ServiceMetrics } from '../../api/observability/metrics.ts';
import goldenCertificate from '../../contracts/golden/erasure-certificate/valid-verified.json' with { type: 'json' };
import { writeLocalCatalog } from '../support/catalog.ts';
import { engineOf, keyringOf, TEST_POLICIES } from '../support/engine.ts';
import { startTestService } from '../support/service.ts';

const CUSTOMERS = 'glue.crm.customers';
const ORDERS = 'glue.crm.orders';
const SUBJECT = 'sentinel.subject@example.com';

/** The SQLite ledger, remembering every table list a request showed (after each progress write and each move). */
class RecordingLedger extends SqliteErasureLedger {
  readonly shown: { id: string; tables: readonly TableProgress[] }[] = [];

  override async updateTables(id: string, runId: string, tables: readonly TableProgress[]): Promise<void> {
    await super.updateTables(id, runId, tables);
    this.shown.push({ id, tables: (await this.get(id))?.tables ?? [] });
  }

  override async transition(id: string, change: StatusChange, audit: AuditInput): Promise<ErasureRequest> {
    const moved = await super.transition(id, change, audit);
    this.shown.push({ id, tables: moved.tables });
    return moved;
  }
}

/** What the Spark job does, scripted: progress reports in order, then a certificate, a failed verification or a crash. */
class ScriptedJob implements ErasureRunner {
  readonly description = 'scripted job';
  readonly orders: ErasureOrder[] = [];

  constructor(
    private readonly reports: readonly (readonly TableProgress[])[],
    private readonly end: 'verified' | 'unverified' | 'crash',
  ) {}

  run(order: ErasureOrder, onProgress?: ProgressListener): Promise<RunOutcome> {
    this.orders.push(order);
    for (const report of this.reports) onProgress?.(report);
    if (this.end === 'crash') return Promise.reject(new Error('spark-submit exited with code 1'));
    return Promise.resolve({ kind: 'completed', certificate: certificateOf(order, this.end === 'verified') });
  }
}

function certificateOf(order: ErasureOrder, verified: boolean): ErasureCertificate {
  const [template] = goldenCertificate.tables;
  const tables = order.tables.map((table, i) => ({
    ...template!,
    table: table.name,
    rowsDeleted: String(5 + i),
    verification: { ...template!.verification, result: verified || i > 0 ? 'passed' : 'failed' },
  }));
  return parseContract('erasure-certificate', { ...goldenCertificate, runId: order.runId, requestIds: [...order.requestIds], tables, result: verified ? 'verified' : 'failed' });
}

const report = (customers: TableProgress['status'], orders: TableProgress['status']): TableProgress[] => [
  { table: CUSTOMERS, status: customers },
  { table: ORDERS, status: orders },
];

interface Setup {
  ledger: RecordingLedger;
  requests: ErasureRequests;
  worker: (job: ErasureRunner) => ErasureWorker;
  logs: () => Record<string, unknown>[];
  logText: () => string;
  metrics: ServiceMetrics;
  pseudonyms: () => Promise<string[]>;
}

function setup(): Setup {
  const ledger = new RecordingLedger(join(mkdtempSync(join(tmpdir(), 'erasure-worker-')), 'ledger.db'));
  const registry = new TableRegistry({ type: 'glue', name: 'glue', warehouse: 's3://lake/warehouse' }, [
    { name: CUSTOMERS, columns: { email: 'email' } },
    { name: ORDERS, columns: { buyer_email: 'email' } },
  ]);
  const keyring = keyringOf([{ version: 1, state: 'active', root: new Uint8Array(64).fill(7) }]);
  const suppression = new ErasureSuppression(ledger, engineOf(keyring), keyring, { cacheSeconds: 5 });
  const lines: string[] = [];
  const logger = createLogger('info', { write: (line: string) => void lines.push(line) });
  const metrics = new ServiceMetrics({ cache: () => ({ hits: 0, misses: 0, entries: 0 }), keyring: () => ({ loaded: true, activeVersion: 1 }), erasureLedger: () => ledger });
  return {
    ledger,
    requests: new ErasureRequests(ledger, suppression, TEST_POLICIES, registry),
    worker: (job) => new ErasureWorker(ledger, registry, suppression, TEST_POLICIES, job, { maxAttempts: 2, pollSeconds: 60, orphanGraceSeconds: 0, retrySeconds: 0 }, logger, metrics.erasure),
    logs: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>),
    logText: () => lines.join(''),
    metrics,
    pseudonyms: async () => (await ledger.list()).flatMap((r) => r.subjects.flatMap((s) => [...s.pseudonyms])),
  };
}

const OFFICER = { kind: 'api-key' as const, id: 'officer', name: 'officer', roles: new Set(['privacy-officer' as const]), contexts: undefined };

async function file(s: Setup, reference = 'DSR-1'): Promise<ErasureRequest> {
  return (await s.requests.file(OFFICER, { reference, reason: 'gdpr-art17-1a', subjects: [{ context: 'email', value: SUBJECT }] })).request;
}

const RANK = { pending: 0, running: 1, verified: 2, failed: 2 } as const;

/** Every status change of every table of a request, in order; throws at a table whose status went back. */
function expectOnlyForward(shown: readonly { id: string; tables: readonly TableProgress[] }[], id: string): void {
  const last = new Map<string, TableProgress['status']>();
  for (const { tables } of shown.filter((s) => s.id === id)) {
    for (const table of tables) {
      const before = last.get(table.table);
      if (before !== undefined) expect(RANK[table.status], `${table.table}: ${before} -> ${table.status}`).toBeGreaterThanOrEqual(RANK[before]);
      last.set(table.table, table.status);
    }
  }
}

describe('per-table progress', () => {
  it('moves only forward in a run: tables the job has not reached stay pending, never fall back from running', async () => {
    const s = setup();
    const request = await file(s);
    const job = new ScriptedJob([report('running', 'pending'), report('verified', 'pending'), report('verified', 'running'), report('verified', 'verified')], 'verified');
    await s.worker(job).runOnce();
    const shown = s.ledger.shown.filter((x) => x.id === request.id).map((x) => x.tables.map((t) => t.status).join('/'));
    expect(shown).toEqual(['pending/pending', 'running/pending', 'verified/pending', 'verified/running', 'verified/verified', 'verified/verified']);
    expectOnlyForward(s.ledger.shown, request.id);
    expect((await s.ledger.get(request.id))?.status).toBe('verified');
    await s.ledger.close();
  });

  it('keeps what a request showed when a run resumed after a restart reports its tables from the start again', async () => {
    const s = setup();
    const request = await file(s);
    // The service stopped while the job had verified one table and was on the other.
    await s.ledger.transition(request.id, { status: 'running', attempts: 1, runId: 'run-before-restart', tables: report('pending', 'pending') }, { actor: 'service', requestId: request.id, action: 'erasure.started', outcome: 'running' });
    await s.ledger.updateTables(request.id, 'run-before-restart', report('verified', 'running'));
    const job = new ScriptedJob([report('running', 'pending'), report('verified', 'pending'), report('verified', 'running'), report('verified', 'verified')], 'verified');
    await s.worker(job).runOnce();
    expect(job.orders.map((o) => o.runId)).toEqual(['run-before-restart']);
    expectOnlyForward(s.ledger.shown, request.id);
    const shown = s.ledger.shown.filter((x) => x.id === request.id).map((x) => x.tables.map((t) => t.status).join('/'));
    expect(shown.slice(2)).toEqual(['verified/running', 'verified/verified', 'verified/verified']);
    await s.ledger.close();
  });

  it('starts a new attempt from pending, after a run whose verification failed', async () => {
    const s = setup();
    const request = await file(s);
    await s.worker(new ScriptedJob([report('running', 'pending'), report('failed', 'pending'), report('failed', 'verified')], 'unverified')).runOnce();
    expect(await s.ledger.get(request.id)).toMatchObject({ status: 'received', tables: report('failed', 'verified') });
    s.ledger.shown.length = 0;
    await s.worker(new ScriptedJob([report('running', 'pending')], 'verified')).runOnce();
    expect(s.ledger.shown.map((x) => x.tables.map((t) => t.status).join('/'))).toEqual(['pending/pending', 'running/pending', 'verified/verified']);
    await s.ledger.close();
  });
});

describe('what a run tells the operator', () => {
  it('logs the start, each table, the verification and the certificate id, never the subject or its pseudonyms', async () => {
    const s = setup();
    const request = await file(s);
    await s.worker(new ScriptedJob([report('running', 'pending')], 'verified')).runOnce();
    const runId = (await s.ledger.get(request.id))!.runId!;
    const byMessage = (msg: string) => s.logs().filter((line) => line.msg === msg);
    expect(byMessage('erasure run started')).toEqual([expect.objectContaining({ runId, requestIds: [request.id], subjects: 1, tables: [CUSTOMERS, ORDERS], resumed: false })]);
    expect(byMessage('erasure table done').map((line) => [line.table, line.verification, line.rowsDeleted])).toEqual([
      [CUSTOMERS, 'passed', '5'],
      [ORDERS, 'passed', '6'],
    ]);
    expect(byMessage('erasure run verified')).toEqual([expect.objectContaining({ runId, verification: 'verified', certificateId: runId })]);
    expect(byMessage('erasure request verified')).toEqual([expect.objectContaining({ requestId: request.id, certificateId: runId })]);
    const text = s.logText();
    expect(text).not.toContain(SUBJECT);
    for (const pseudonym of await s.pseudonyms()) expect(text).not.toContain(pseudonym);
    await s.ledger.close();
  });

  it('logs a run that left no certificate, with the reason', async () => {
    const s = setup();
    await file(s);
    await s.worker(new ScriptedJob([], 'crash')).runOnce();
    expect(s.logs().filter((line) => line.msg === 'erasure run ended without a certificate')).toEqual([expect.objectContaining({ reason: 'spark-submit exited with code 1' })]);
    await s.ledger.close();
  });
});

describe('erasure metrics', () => {
  /** One sample of the scrape, e.g. `pseudo_erasure_requests{state="received"}`. */
  const sample = (text: string, name: string): number | undefined => {
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line === undefined ? undefined : Number(line.slice(name.length + 1));
  };

  it('counts requests by state from the ledger and the age of the oldest open one', async () => {
    const s = setup();
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() - 40 * 86_400_000);
      await file(s, 'DSR-OLD');
    } finally {
      vi.useRealTimers();
    }
    await file(s, 'DSR-NEW');
    let text = await s.metrics.registry.metrics();
    expect(sample(text, 'pseudo_erasure_requests{state="received"}')).toBe(2);
    expect(sample(text, 'pseudo_erasure_requests{state="verified"}')).toBe(0);
    expect(sample(text, 'pseudo_erasure_oldest_open_request_age_seconds')).toBeGreaterThanOrEqual(40 * 86_400);
    await s.worker(new ScriptedJob([], 'verified')).runOnce();
    text = await s.metrics.registry.metrics();
    expect(sample(text, 'pseudo_erasure_requests{state="received"}')).toBe(0);
    expect(sample(text, 'pseudo_erasure_requests{state="verified"}')).toBe(2);
    expect(sample(text, 'pseudo_erasure_oldest_open_request_age_seconds')).toBe(0);
    await s.ledger.close();
  });

  it('counts runs, failures by outcome, run durations and rows deleted by table, with no identifier in any label', async () => {
    const s = setup();
    await file(s);
    await s.worker(new ScriptedJob([], 'unverified')).runOnce();
    await s.worker(new ScriptedJob([], 'verified')).runOnce();
    await file(s, 'DSR-2');
    await s.worker(new ScriptedJob([], 'crash')).runOnce();
    const text = await s.metrics.registry.metrics();
    expect(sample(text, 'pseudo_erasure_runs_total')).toBe(3);
    expect(sample(text, 'pseudo_erasure_run_failures_total{outcome="unverified"}')).toBe(1);
    expect(sample(text, 'pseudo_erasure_run_failures_total{outcome="crashed"}')).toBe(1);
    expect(sample(text, 'pseudo_erasure_run_duration_seconds_count')).toBe(3);
    expect(sample(text, `pseudo_erasure_rows_deleted_total{table="${CUSTOMERS}"}`)).toBe(10);
    expect(sample(text, `pseudo_erasure_rows_deleted_total{table="${ORDERS}"}`)).toBe(12);
    const erasureLines = text.split('\n').filter((l) => l.startsWith('pseudo_erasure_'));
    const requestIds = (await s.ledger.list()).map((r) => r.id);
    for (const secret of [SUBJECT, ...(await s.pseudonyms()), ...requestIds]) expect(erasureLines.join('\n')).not.toContain(secret);
    await s.ledger.close();
  });
});

describe('/metrics of a service with erasure on', () => {
  it('serves the requests by state and the oldest open request, with no subject, pseudonym or request id in it', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'erasure-metrics-'));
    const catalog = writeLocalCatalog(folder, [{ namespace: 'crm', name: 'customers', columns: { id: 'long', email: 'string' } }]);
    const registryFile = join(folder, 'registry.json');
    writeFileSync(registryFile, JSON.stringify({ catalog: { type: 'jdbc', name: 'local', ...catalog }, tables: [{ name: 'local.crm.customers', columns: { email: 'email' } }] }));
    // No worker here: the request stays received.
    const service = await startTestService({ PSEUDO_ERASURE_REGISTRY_FILE: registryFile });
    try {
      const officer = await service.createKey('officer', ['privacy-officer']);
      const filed = await service.call('POST', '/v1/erasure-requests', { apiKey: officer, body: { reference: 'DSR-M', reason: 'gdpr-art17-1a', subjects: [{ context: 'email', value: SUBJECT }] } });
      expect(filed.status).toBe(202);
      const text = (await service.call('GET', '/metrics')).text;
      expect(text).toMatch(/^pseudo_erasure_requests\{state="received"\} 1$/m);
      expect(text).toMatch(/^pseudo_erasure_requests\{state="verified"\} 0$/m);
      expect(text).toMatch(/^pseudo_erasure_oldest_open_request_age_seconds \d/m);
      expect(text).toMatch(/^pseudo_erasure_runs_total 0$/m);
      expect(text).not.toContain(SUBJECT);
      expect(text).not.toContain((filed.json as { id: string }).id);
    } finally {
      await service.close();
    }
  });
});
