/**
 * The maintenance schedule between a runner and the real SQLite erasure ledger: a table an erasure request names
 * while received is skipped (the erasure goes first), the others are maintained; each outcome is a log line and a
 * metric labelled by outcome only. The job is a scripted MaintenanceRunner returning the report the Spark job
 * writes; the job itself runs on local Spark in spark-udfs/tests/test_maintenance.py.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { SqliteErasureLedger } from '../../api/erasure/sqliteLedger.ts';
import { MaintenanceMetrics, MaintenanceSchedule, outcomeOfReport, type MaintenanceOutcome, type MaintenanceRunner } from '../../api/maintenance/schedule.ts';
import { createLogger } from '../../api/observability/logger.ts';

const ERASED = 'local.crm.customers';
const EVENTS = 'local.crm.events';
const ORDERS = 'local.crm.orders';

class ScriptedJob implements MaintenanceRunner {
  readonly description = 'scripted job';
  readonly tables: string[] = [];

  constructor(private readonly outcomes: Readonly<Record<string, MaintenanceOutcome>>) {}

  run(_runId: string, table: string): Promise<MaintenanceOutcome> {
    this.tables.push(table);
    return Promise.resolve(this.outcomes[table] ?? { kind: 'crashed', reason: 'no script' });
  }
}

function report(table: string, result: 'ok' | 'failed'): MaintenanceOutcome {
  const stats = { dataFiles: result === 'ok' ? 3 : 60, manifests: 1, snapshots: 10 };
  return { kind: 'completed', report: { result, tables: [{ table, result, before: { dataFiles: 60, manifests: 60, snapshots: 61 }, after: stats }] } };
}

describe('maintenance schedule', () => {
  it('skips a table with an open erasure, maintains the others, and logs and counts each outcome', async () => {
    const ledger = new SqliteErasureLedger(join(mkdtempSync(join(tmpdir(), 'maintenance-schedule-')), 'ledger.db'));
    await ledger.create(
      { id: 'er-1', reference: 'DSR-1', reason: 'gdpr-art17-1a', filedBy: 'api-key:officer', subjects: [{ context: 'email', pseudonyms: ['s1.x'] }], tables: [{ table: ERASED, status: 'pending' }] },
      { actor: 'api-key:officer', action: 'erasure.filed', requestId: 'er-1', outcome: 'received' },
    );
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger('info', { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const registry = new Registry();
    const job = new ScriptedJob({ [EVENTS]: report(EVENTS, 'ok'), [ORDERS]: report(ORDERS, 'failed') });
    const schedule = new MaintenanceSchedule([ERASED, EVENTS, ORDERS], ledger, job, 24, logger, new MaintenanceMetrics([registry]));

    expect(await schedule.runOnce()).toEqual(['skipped_erasure', 'ok', 'failed']);

    expect(job.tables).toEqual([EVENTS, ORDERS]);
    expect(lines.filter((l) => l.msg === 'table maintenance skipped: an erasure of the table is pending or running')).toEqual([expect.objectContaining({ table: ERASED })]);
    expect(lines.filter((l) => l.msg === 'table maintenance done')).toEqual([expect.objectContaining({ table: EVENTS, dataFilesBefore: 60, dataFilesAfter: 3, result: 'ok' })]);
    expect(lines.filter((l) => l.msg === 'table maintenance failed')).toEqual([expect.objectContaining({ table: ORDERS, result: 'failed' })]);
    const text = await registry.metrics();
    expect(text).toMatch(/^pseudo_maintenance_table_runs_total\{outcome="skipped_erasure"\} 1$/m);
    expect(text).toMatch(/^pseudo_maintenance_table_runs_total\{outcome="ok"\} 1$/m);
    expect(text).toMatch(/^pseudo_maintenance_table_runs_total\{outcome="failed"\} 1$/m);
    expect(text).toMatch(/^pseudo_maintenance_table_run_duration_seconds_count 2$/m);
    // Outcomes are the only label: no table name in a metric.
    expect(text).not.toContain('local.crm');
    await ledger.close();
  });

  it('takes a report only when it has the fields the service reads; otherwise the run crashed, saying which field', () => {
    expect(outcomeOfReport(undefined, 'the job exited with code 2 without a report')).toEqual({ kind: 'crashed', reason: 'the job exited with code 2 without a report' });
    expect(outcomeOfReport('{', 'x')).toEqual({ kind: 'crashed', reason: "the job's report is not JSON" });
    expect(outcomeOfReport(JSON.stringify({ result: 'ok' }), 'x')).toEqual({ kind: 'crashed', reason: "the job's report lacks tables" });
    expect(outcomeOfReport(JSON.stringify({ result: 'ok', tables: [{ table: EVENTS, result: 'ok' }] }), 'x')).toEqual({ kind: 'completed', report: { result: 'ok', tables: [{ table: EVENTS, result: 'ok' }] } });
  });
});
