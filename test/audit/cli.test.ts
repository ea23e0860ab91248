/**
 * `npm run audit -- list | export | verify`, run as a process (the bundled CLI, dist/cli.mjs) against a ledger
 * file this test writes through the SQLite ledger, at fixed times so that the time filters have known answers;
 * then the same commands against the DynamoDB ledger on moto's server (PSEUDO_ERASURE_LEDGER=dynamodb).
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import sqlite from 'node-sqlite3-wasm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DynamoErasureLedger, ensureTable } from '../../api/erasure/dynamoLedger.ts';
import type { AuditInput, ErasureLedger, NewErasureRequest } from '../../api/erasure/ledger.ts';
import { SqliteErasureLedger } from '../../api/erasure/sqliteLedger.ts';
import { startMoto, TEST_REGION, type Moto } from '../support/moto.ts';

interface Run {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

function audit(ledgerFile: string, ...args: string[]): Promise<Run> {
  return auditIn(dir, ledgerFile, ...args);
}

function auditIn(dataDir: string, ledgerFile: string, ...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile('node', ['dist/cli.mjs', 'audit', ...args], { env: { ...process.env, PSEUDO_DATA_DIR: dataDir, PSEUDO_ERASURE_LEDGER_FILE: ledgerFile } }, (error, stdout, stderr) => {
      resolve({ status: error ? Number(error.code) : 0, stdout, stderr });
    });
  });
}

const filed = (id: string, reference: string): NewErasureRequest => ({
  id,
  reference,
  reason: 'gdpr-art17-1a',
  filedBy: 'person:olivia',
  subjects: [{ context: 'email', pseudonyms: [`s1.${id}`] }],
  tables: [{ table: 'local.crm.customers', status: 'pending' }],
});
const entry = (requestId: string, action: string, outcome: string, actor = 'service'): AuditInput => ({ actor, action, requestId, outcome });

interface Exported {
  seq: number;
  at: string;
  actor: string;
  action: string;
  requestId: string | null;
  outcome: string;
  previousHash: string;
  hash: string;
}
const lines = (text: string): Exported[] =>
  text
    .trim()
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as Exported);

let dir: string;
let ledgerFile: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'audit-cli-'));
  ledgerFile = join(dir, 'erasure-ledger.db');
  await writeEntries(new SqliteErasureLedger(ledgerFile));
});

/** The five entries every store holds: fixed clock, entries 1-2 on 2026-01-10, 3 on 2026-01-20, 4-5 on 2026-02-05. */
async function writeEntries(ledger: ErasureLedger): Promise<void> {
  vi.useFakeTimers({ toFake: ['Date'] });
  try {
    vi.setSystemTime(new Date('2026-01-10T09:00:00.000Z'));
    await ledger.create(filed('er-a', 'TICKET-A'), entry('er-a', 'erasure.filed', 'received', 'person:olivia'));
    vi.setSystemTime(new Date('2026-01-10T09:05:00.000Z'));
    await ledger.transition('er-a', { status: 'running', attempts: 1, runId: 'run-a' }, entry('er-a', 'erasure.started', 'running'));
    vi.setSystemTime(new Date('2026-01-20T12:00:00.000Z'));
    await ledger.transition('er-a', { status: 'verified', certificate: { result: 'verified' } }, entry('er-a', 'erasure.verified', 'verified'));
    vi.setSystemTime(new Date('2026-02-05T08:00:00.000Z'));
    await ledger.create(filed('er-b', 'TICKET-B'), entry('er-b', 'erasure.filed', 'received', 'person:olivia'));
    vi.setSystemTime(new Date('2026-02-05T08:30:00.000Z'));
    await ledger.transition('er-b', { status: 'running', attempts: 1, runId: 'run-b' }, entry('er-b', 'erasure.started', 'running'));
  } finally {
    await ledger.close();
    vi.useRealTimers();
  }
}

afterAll(() => {
  vi.useRealTimers();
});

/** A copy of the ledger to damage, so that each test starts from the intact chain. */
function copyOfLedger(name: string, damage: (db: sqlite.Database) => void): string {
  const file = join(dir, `${name}.db`);
  copyFileSync(ledgerFile, file);
  const db = new sqlite.Database(file);
  try {
    damage(db);
  } finally {
    db.close();
  }
  return file;
}

describe('audit export', () => {
  it('writes every entry as one JSON line with its hashes, in chain order', async () => {
    const { status, stdout } = await audit(ledgerFile, 'export');
    expect(status).toBe(0);
    const exported = lines(stdout);
    expect(exported.map((e) => [e.seq, e.requestId, e.action])).toEqual([
      [1, 'er-a', 'erasure.filed'],
      [2, 'er-a', 'erasure.started'],
      [3, 'er-a', 'erasure.verified'],
      [4, 'er-b', 'erasure.filed'],
      [5, 'er-b', 'erasure.started'],
    ]);
    expect(exported[0]).toEqual({
      seq: 1,
      at: '2026-01-10T09:00:00.000Z',
      actor: 'person:olivia',
      action: 'erasure.filed',
      requestId: 'er-a',
      outcome: 'received',
      previousHash: '0'.repeat(64),
      hash: expect.stringMatching(/^[0-9a-f]{64}$/) as unknown,
    });
    for (let i = 1; i < exported.length; i++) expect(exported[i]!.previousHash).toBe(exported[i - 1]!.hash);
  });

  it('filters by request id', async () => {
    const { status, stdout } = await audit(ledgerFile, 'export', '--request', 'er-b');
    expect(status).toBe(0);
    expect(lines(stdout).map((e) => e.seq)).toEqual([4, 5]);
  });

  it('filters by time: --since inclusive, --until exclusive, dates and date-times with a zone', async () => {
    expect(lines((await audit(ledgerFile, 'export', '--since', '2026-01-20T12:00:00Z')).stdout).map((e) => e.seq)).toEqual([3, 4, 5]);
    expect(lines((await audit(ledgerFile, 'export', '--until', '2026-01-20T12:00:00Z')).stdout).map((e) => e.seq)).toEqual([1, 2]);
    expect(lines((await audit(ledgerFile, 'export', '--since', '2026-01-11', '--until', '2026-02-01')).stdout).map((e) => e.seq)).toEqual([3]);
    expect(lines((await audit(ledgerFile, 'export', '--since', '2026-01-10T10:05:00+01:00', '--request', 'er-a')).stdout).map((e) => e.seq)).toEqual([2, 3]);
  });

  it('writes nothing to stdout when no entry matches', async () => {
    const { status, stdout } = await audit(ledgerFile, 'export', '--request', 'er-none');
    expect(status).toBe(0);
    expect(stdout).toBe('');
  });
});

describe('audit list', () => {
  it('prints a table with a header, one row per entry and a count', async () => {
    const { status, stdout } = await audit(ledgerFile, 'list', '--request', 'er-a', '--since', '2026-01-10T09:01:00Z');
    expect(status).toBe(0);
    const rows = stdout.trimEnd().split('\n');
    expect(rows[0]).toMatch(/^SEQ\s+AT\s+ACTOR\s+ACTION\s+REQUEST\s+OUTCOME\s+HASH$/);
    expect(rows.slice(1, -1).map((row) => row.split(/\s+/).slice(0, 6))).toEqual([
      ['2', '2026-01-10T09:05:00.000Z', 'service', 'erasure.started', 'er-a', 'running'],
      ['3', '2026-01-20T12:00:00.000Z', 'service', 'erasure.verified', 'er-a', 'verified'],
    ]);
    expect(rows.at(-1)).toBe('2 of 5 entries');
  });
});

describe('audit verify', () => {
  let head: string;
  let third: string;
  beforeAll(async () => {
    const exported = lines((await audit(ledgerFile, 'export')).stdout);
    head = exported.at(-1)!.hash;
    third = exported[2]!.hash;
  });

  it('passes on an intact chain and prints the head hash to keep', async () => {
    const { status, stdout } = await audit(ledgerFile, 'verify');
    expect(status).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ entries: 5, valid: true, headHash: head });
  });

  it('passes when the chain ends at the kept head hash', async () => {
    const { status, stdout } = await audit(ledgerFile, 'verify', '--head', head);
    expect(status).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ valid: true, headHash: head, expectedHead: head, headMatches: true });
  });

  it('fails when the tail after the kept head was cut off, though the rest still links', async () => {
    const cut = copyOfLedger('cut', (db) => db.run('DELETE FROM audit_log WHERE seq > 3'));
    const plain = await audit(cut, 'verify');
    expect(plain.status).toBe(0);
    const { status, stdout, stderr } = await audit(cut, 'verify', '--head', head);
    expect(status).toBe(1);
    expect(JSON.parse(stdout)).toMatchObject({ entries: 3, valid: true, headHash: third, headMatches: false, expectedHeadAt: null });
    expect(stderr).toContain('does not contain the kept head hash');
  });

  it('fails when entries were appended after the kept head, and says where the kept hash is', async () => {
    const { status, stdout, stderr } = await audit(ledgerFile, 'verify', '--head', third);
    expect(status).toBe(1);
    expect(JSON.parse(stdout)).toMatchObject({ valid: true, headHash: head, headMatches: false, expectedHeadAt: 3 });
    expect(stderr).toContain('entry 3 of 5');
  });

  it('fails on a changed entry and names the first broken one, with or without --head', async () => {
    const changed = copyOfLedger('changed', (db) => db.run("UPDATE audit_log SET outcome = 'failed' WHERE seq = 3"));
    for (const args of [[], ['--head', head]]) {
      const { status, stdout, stderr } = await audit(changed, 'verify', ...args);
      expect(status).toBe(1);
      expect(JSON.parse(stdout)).toMatchObject({ valid: false, brokenAt: 3, brokenEntry: { seq: 3, action: 'erasure.verified', requestId: 'er-a' } });
      expect(stderr).toContain('broken at entry 3');
    }
  });
});

describe('usage', () => {
  it('prints usage with examples for --help and exits 0', async () => {
    const { status, stdout } = await audit(ledgerFile, '--help');
    expect(status).toBe(0);
    expect(stdout).toContain('usage: npm run audit -- <command>');
    expect(stdout).toContain('examples:');
    expect(stdout).toContain('verify --head');
  });

  it.each([
    ['no command', []],
    ['an unknown command', ['shred']],
    ['an unknown option', ['list', '--subject', 'x']],
    ['a time that is not ISO 8601', ['export', '--since', 'yesterday']],
    ['a head that is not a SHA-256 hash', ['verify', '--head', 'abc']],
    ['a filter on verify', ['verify', '--request', 'er-a']],
    ['--head on list', ['list', '--head', 'a'.repeat(64)]],
  ])('exits 2 with the usage for %s', async (_case, args) => {
    const { status, stdout, stderr } = await audit(ledgerFile, ...args);
    expect(status).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toContain('usage: npm run audit');
  });

  it('exits 2 and creates nothing when the configured ledger file does not exist', async () => {
    const missing = join(dir, 'nowhere', 'ledger.db');
    const { status, stderr } = await audit(missing, 'list');
    expect(status).toBe(2);
    expect(stderr).toContain('PSEUDO_ERASURE_LEDGER_FILE');
    expect(existsSync(missing)).toBe(false);
  });

  it('exits 2 when the ledger the service recorded was emptied, instead of verifying an empty chain', async () => {
    // The service keeps a head record beside its data (PSEUDO_DATA_DIR); a 0-byte ledger must not read as valid.
    const dataDir = mkdtempSync(join(tmpdir(), 'audit-cli-head-'));
    const emptied = join(dataDir, 'erasure-ledger.db');
    copyFileSync(ledgerFile, emptied);
    const { ledger } = SqliteErasureLedger.open(emptied, join(dataDir, 'erasure-ledger.head.json'));
    await ledger.close();
    truncateSync(emptied, 0);
    const { status, stdout, stderr } = await auditIn(dataDir, emptied, 'verify');
    expect(status).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toContain('PSEUDO_ERASURE_LEDGER_FILE');
    expect(stderr).toContain('empty (0 bytes)');
  });
});

describe('on the DynamoDB ledger (moto)', () => {
  const table = 'erasure-ledger-audit';
  let moto: Moto;
  let head: string;
  let third: string;

  /** The CLI as a deployment runs it against the shared ledger: no ledger file, the table and endpoint configured. */
  function auditDynamo(...args: string[]): Promise<Run> {
    const env: NodeJS.ProcessEnv = { ...process.env, PSEUDO_DATA_DIR: dir, PSEUDO_ERASURE_LEDGER: 'dynamodb', PSEUDO_ERASURE_LEDGER_TABLE: table, PSEUDO_AWS_ENDPOINT: moto.endpoint, AWS_REGION: TEST_REGION };
    delete env.PSEUDO_ERASURE_LEDGER_FILE;
    return new Promise((resolve) => {
      execFile('node', ['dist/cli.mjs', 'audit', ...args], { env }, (error, stdout, stderr) => {
        resolve({ status: error ? Number(error.code) : 0, stdout, stderr });
      });
    });
  }

  beforeAll(async () => {
    moto = await startMoto();
    await ensureTable({ table, region: TEST_REGION, endpoint: moto.endpoint });
    await writeEntries(new DynamoErasureLedger({ table, region: TEST_REGION, endpoint: moto.endpoint }));
  });
  afterAll(async () => {
    await moto.stop();
  });

  it('exports every entry in chain order with its hashes, and filters by request and time', async () => {
    const all = await auditDynamo('export');
    expect(all.status).toBe(0);
    const exported = lines(all.stdout);
    expect(exported.map((e) => [e.seq, e.requestId, e.action, e.at])).toEqual([
      [1, 'er-a', 'erasure.filed', '2026-01-10T09:00:00.000Z'],
      [2, 'er-a', 'erasure.started', '2026-01-10T09:05:00.000Z'],
      [3, 'er-a', 'erasure.verified', '2026-01-20T12:00:00.000Z'],
      [4, 'er-b', 'erasure.filed', '2026-02-05T08:00:00.000Z'],
      [5, 'er-b', 'erasure.started', '2026-02-05T08:30:00.000Z'],
    ]);
    expect(exported[0]!.previousHash).toBe('0'.repeat(64));
    for (let i = 1; i < exported.length; i++) expect(exported[i]!.previousHash).toBe(exported[i - 1]!.hash);
    head = exported.at(-1)!.hash;
    third = exported[2]!.hash;
    expect(lines((await auditDynamo('export', '--request', 'er-b')).stdout).map((e) => e.seq)).toEqual([4, 5]);
    expect(lines((await auditDynamo('export', '--since', '2026-01-11', '--until', '2026-02-01')).stdout).map((e) => e.seq)).toEqual([3]);
  });

  it('lists entries as a table with a count', async () => {
    const { status, stdout } = await auditDynamo('list', '--request', 'er-a', '--since', '2026-01-10T09:01:00Z');
    expect(status).toBe(0);
    const rows = stdout.trimEnd().split('\n');
    expect(rows[0]).toMatch(/^SEQ\s+AT\s+ACTOR\s+ACTION\s+REQUEST\s+OUTCOME\s+HASH$/);
    expect(rows.slice(1, -1).map((row) => row.split(/\s+/).slice(0, 4))).toEqual([
      ['2', '2026-01-10T09:05:00.000Z', 'service', 'erasure.started'],
      ['3', '2026-01-20T12:00:00.000Z', 'service', 'erasure.verified'],
    ]);
    expect(rows.at(-1)).toBe('2 of 5 entries');
  });

  it('verifies against the kept head hash: passes at the head, fails when entries follow it or one was changed', async () => {
    const intact = await auditDynamo('verify', '--head', head);
    expect(intact.status).toBe(0);
    expect(JSON.parse(intact.stdout)).toMatchObject({ entries: 5, valid: true, headHash: head, headMatches: true });
    const appended = await auditDynamo('verify', '--head', third);
    expect(appended.status).toBe(1);
    expect(JSON.parse(appended.stdout)).toMatchObject({ valid: true, headHash: head, headMatches: false, expectedHeadAt: 3 });
    expect(appended.stderr).toContain('entry 3 of 5');
    // Someone with write access to the table edits an entry's outcome in place.
    const client = new DynamoDBClient({ region: TEST_REGION, endpoint: moto.endpoint });
    await client.send(
      new UpdateItemCommand({
        TableName: table,
        Key: { pk: { S: 'AUDIT' }, sk: { S: `ENTRY#${String(3).padStart(20, '0')}` } },
        UpdateExpression: 'SET outcome = :outcome',
        ExpressionAttributeValues: { ':outcome': { S: 'failed' } },
      }),
    );
    client.destroy();
    const changed = await auditDynamo('verify', '--head', head);
    expect(changed.status).toBe(1);
    expect(JSON.parse(changed.stdout)).toMatchObject({ valid: false, brokenAt: 3 });
    expect(changed.stderr).toContain('broken at entry 3');
  });
});
