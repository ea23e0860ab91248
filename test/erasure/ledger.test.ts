/**
 * The erasure ledger contract, run against every store: SQLite on a file, and DynamoDB on moto's server (a table
 * per test). Then what only one store can show: SQLite's stale lock; DynamoDB's state machine under concurrent
 * writers (made deterministic by holding one client's transaction until the other's has landed) and its
 * throttling retries (ThrottlingException injected by a client middleware in front of the real endpoint).
 */
import { mkdirSync, mkdtempSync, utimesSync, existsSync, writeFileSync } from 'node:fs';
import { createServer, request as forward, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteItemCommand, DynamoDBClient, ThrottlingException, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import sqlite from 'node-sqlite3-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoErasureLedger, ensureTable } from '../../api/erasure/dynamoLedger.ts';
import { liftOutcome, verifyAuditChain, type AuditInput, type ErasureLedger, type NewErasureRequest, type NewSuppressionLift } from '../../api/erasure/ledger.ts';
import { checkWithinFirstMonth, deadlineOf } from '../../api/erasure/requests.ts';
import { SqliteErasureLedger } from '../../api/erasure/sqliteLedger.ts';
import { ErasureSuppression } from '../../api/erasure/suppression.ts';
import { LedgerError } from '../../api/errors.ts';
import { writeLocalCatalog } from '../support/catalog.ts';
import { engineOf, keyringOf } from '../support/engine.ts';
import { startMoto, TEST_REGION, type Moto } from '../support/moto.ts';
import { startTestService } from '../support/service.ts';

let moto: Moto | undefined;
let tables = 0;

beforeAll(async () => {
  moto = await startMoto();
});
afterAll(async () => {
  await moto?.stop();
});

const endpoint = (): string => {
  if (!moto) throw new Error('moto did not start');
  return moto.endpoint;
};

/** A client as the ledger builds it (no SDK retries), to which a test can add middleware. */
const dynamoClient = (): DynamoDBClient => new DynamoDBClient({ region: TEST_REGION, endpoint: endpoint(), maxAttempts: 1 });

/**
 * A client whose next TransactWriteItems waits until `release` is called, after saying it got there: lets a
 * test put another writer's whole transaction between this writer's reads and its write.
 */
function heldClient(): { client: DynamoDBClient; reachedWrite: Promise<void>; release: () => void } {
  const client = dynamoClient();
  let reached!: () => void;
  let release!: () => void;
  const reachedWrite = new Promise<void>((resolve) => (reached = resolve));
  const released = new Promise<void>((resolve) => (release = resolve));
  let held = false;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === 'TransactWriteItemsCommand' && !held) {
        held = true;
        reached();
        await released;
      }
      return next(args);
    },
    { step: 'initialize', name: 'holdFirstTransaction' },
  );
  return { client, reachedWrite, release };
}

/** A store under test: where a fresh ledger lives (a file, a table), how to open it, how an attacker edits its audit log. */
interface Store {
  readonly name: string;
  fresh(): Promise<string>;
  open(location: string): ErasureLedger;
  changeOutcome(location: string, seq: number, outcome: string): Promise<void>;
  removeEntry(location: string, seq: number): Promise<void>;
  /**
   * Runs `write` on a ledger of its own with `between` put after the write's reads and before its write, where the
   * store lets anything in there (DynamoDB: its transaction held); SQLite reads and writes in one transaction, so
   * `between` runs before.
   */
  interleave<T>(location: string, write: (ledger: ErasureLedger) => Promise<T>, between: () => Promise<void>): Promise<T>;
}

const entryKey = (seq: number) => ({ pk: { S: 'AUDIT' }, sk: { S: `ENTRY#${String(seq).padStart(20, '0')}` } });

const STORES: Store[] = [
  {
    name: 'sqlite',
    fresh: () => Promise.resolve(join(mkdtempSync(join(tmpdir(), 'ledger-')), 'erasure.db')),
    open: (file) => new SqliteErasureLedger(file),
    changeOutcome: (file, seq, outcome) => {
      const raw = new sqlite.Database(file);
      raw.run('UPDATE audit_log SET outcome = ? WHERE seq = ?', [outcome, seq]);
      raw.close();
      return Promise.resolve();
    },
    removeEntry: (file, seq) => {
      const raw = new sqlite.Database(file);
      raw.run('DELETE FROM audit_log WHERE seq = ?', [seq]);
      raw.close();
      return Promise.resolve();
    },
    interleave: async (file, write, between) => {
      await between();
      const ledger = new SqliteErasureLedger(file);
      try {
        return await write(ledger);
      } finally {
        await ledger.close();
      }
    },
  },
  {
    name: 'dynamodb (moto)',
    fresh: async () => {
      const table = `erasure-ledger-${++tables}`;
      await ensureTable({ table, region: TEST_REGION, endpoint: endpoint() });
      return table;
    },
    open: (table) => new DynamoErasureLedger({ table, region: TEST_REGION, endpoint: endpoint() }),
    changeOutcome: async (table, seq, outcome) => {
      const client = dynamoClient();
      await client.send(
        new UpdateItemCommand({ TableName: table, Key: entryKey(seq), UpdateExpression: 'SET outcome = :o', ExpressionAttributeValues: { ':o': { S: outcome } } }),
      );
      client.destroy();
    },
    removeEntry: async (table, seq) => {
      const client = dynamoClient();
      await client.send(new DeleteItemCommand({ TableName: table, Key: entryKey(seq) }));
      client.destroy();
    },
    interleave: async (table, write, between) => {
      const held = heldClient();
      const ledger = new DynamoErasureLedger({ table, region: TEST_REGION, client: held.client });
      try {
        const late = write(ledger);
        await held.reachedWrite;
        await between();
        held.release();
        return await late;
      } finally {
        await ledger.close();
      }
    },
  },
];

function request(id: string, reference = 'TICKET-1'): NewErasureRequest {
  return {
    id,
    reference,
    reason: 'gdpr-art17-1a',
    filedBy: 'person:olivia',
    subjects: [{ context: 'email', pseudonyms: ['s1.AAAA', 's2.BBBB'] }],
    tables: [{ table: 'local.crm.customers', status: 'pending' }],
  };
}

const audit = (requestId: string, action = 'erasure.filed'): AuditInput => ({ actor: 'person:olivia', action, requestId, outcome: 'received' });

function lift(id: string, pseudonyms: string[] = ['s1.AAAA', 's2.BBBB'], reference = 'CONSENT-1'): NewSuppressionLift {
  return { id, reference, reason: 'consent', liftedBy: 'person:olivia', subjects: [{ context: 'email', pseudonyms }] };
}

const liftAudit = (entry: NewSuppressionLift): AuditInput => ({ actor: 'person:olivia', action: 'erasure.lifted', requestId: entry.id, outcome: liftOutcome(entry) });

/** Files a request and finishes it, as the worker would: only then may its subjects be lifted. */
async function fileAndFinish(ledger: ErasureLedger, filed: NewErasureRequest): Promise<void> {
  await ledger.create(filed, audit(filed.id));
  await ledger.transition(filed.id, { status: 'running', attempts: 1 }, audit(filed.id, 'erasure.started'));
  await ledger.transition(filed.id, { status: 'verified' }, audit(filed.id, 'erasure.verified'));
}

describe.each(STORES)('erasure ledger: $name', (store) => {
  const fresh = async (): Promise<{ ledger: ErasureLedger; location: string }> => {
    const location = await store.fresh();
    return { ledger: store.open(location), location };
  };

  it('stores a request with its subjects and audit entry, and keeps them across a reopen', async () => {
    const { ledger, location } = await fresh();
    const { request: created, created: isNew } = await ledger.create(request('er-1'), audit('er-1'));
    expect(isNew).toBe(true);
    expect(created).toMatchObject({ id: 'er-1', status: 'received', attempts: 0, reference: 'TICKET-1', reason: 'gdpr-art17-1a' });
    await ledger.close();
    const again = store.open(location);
    expect(await again.get('er-1')).toEqual(created);
    expect(await again.get('er-none')).toBeUndefined();
    expect(await again.auditEntries()).toHaveLength(1);
    expect([...(await again.erasedPseudonyms('email'))].sort()).toEqual(['s1.AAAA', 's2.BBBB']);
    expect((await again.erasedPseudonyms('vin')).size).toBe(0);
    await again.close();
  });

  it('moves a request through its states with an audit entry each, and lists by state', async () => {
    const { ledger } = await fresh();
    await ledger.create(request('er-1'), audit('er-1'));
    await ledger.create(request('er-2', 'TICKET-2'), audit('er-2'));
    await ledger.transition('er-1', { status: 'running', attempts: 1, runId: 'run-1' }, audit('er-1', 'erasure.started'));
    const done = await ledger.transition('er-1', { status: 'verified', certificate: { result: 'verified' }, tables: [{ table: 'local.crm.customers', status: 'verified' }] }, audit('er-1', 'erasure.verified'));
    expect(done).toMatchObject({ status: 'verified', attempts: 1, runId: 'run-1', certificate: { result: 'verified' } });
    expect(await ledger.get('er-1')).toEqual(done);
    expect((await ledger.list('received')).map((r) => r.id)).toEqual(['er-2']);
    expect((await ledger.list('verified')).map((r) => r.id)).toEqual(['er-1']);
    expect(await ledger.list()).toHaveLength(2);
    expect((await ledger.auditEntries()).map((e) => e.action)).toEqual(['erasure.filed', 'erasure.filed', 'erasure.started', 'erasure.verified']);
    await expect(ledger.transition('nope', { status: 'failed' }, audit('nope'))).rejects.toThrow('no erasure request with this id');
    await ledger.close();
  });

  it('keeps a 64-bit snapshot id in a certificate exactly as it was given', async () => {
    const { ledger, location } = await fresh();
    await ledger.create(request('er-1'), audit('er-1'));
    await ledger.transition('er-1', { status: 'running', attempts: 1 }, audit('er-1', 'erasure.started'));
    await ledger.transition('er-1', { status: 'verified', certificate: { snapshotBefore: '9130679734744880546' } }, audit('er-1', 'erasure.verified'));
    const reader = store.open(location);
    expect((await reader.get('er-1'))?.certificate).toEqual({ snapshotBefore: '9130679734744880546' });
    await reader.close();
    await ledger.close();
  });

  it('shows per-table progress of a running request', async () => {
    const { ledger } = await fresh();
    await ledger.create(request('er-1'), audit('er-1'));
    await ledger.transition('er-1', { status: 'running', attempts: 1, runId: 'run-1' }, audit('er-1', 'erasure.started'));
    await ledger.updateTables('er-1', 'run-1', [{ table: 'local.crm.customers', status: 'running', detail: 'deleting' }]);
    expect((await ledger.get('er-1'))?.tables).toEqual([{ table: 'local.crm.customers', status: 'running', detail: 'deleting' }]);
    expect(await ledger.auditEntries()).toHaveLength(2);
    await ledger.close();
  });

  it('moves per-table progress only forward, in its run only, whichever process writes it', async () => {
    const { ledger, location } = await fresh();
    const other = store.open(location); // another process: an overlapping or late writer
    const pending = [
      { table: 'local.crm.customers', status: 'pending' },
      { table: 'local.crm.orders', status: 'pending' },
    ] as const;
    await ledger.create({ ...request('er-1'), tables: pending }, audit('er-1'));
    // An earlier run failed and was retried: the request now runs in run-2.
    await ledger.transition('er-1', { status: 'running', attempts: 1, runId: 'run-1' }, audit('er-1', 'erasure.started'));
    await ledger.transition('er-1', { status: 'received', error: 'crashed' }, audit('er-1', 'erasure.retry'));
    await ledger.transition('er-1', { status: 'running', attempts: 2, runId: 'run-2', tables: pending }, audit('er-1', 'erasure.started'));
    const shown = async () => (await ledger.get('er-1'))?.tables.map((t) => `${t.status}${t.detail ? `:${t.detail}` : ''}`).join('/');

    await ledger.updateTables('er-1', 'run-2', [{ table: 'local.crm.customers', status: 'verified' }, { table: 'local.crm.orders', status: 'running' }]);
    expect(await shown()).toBe('verified/running');
    // A late report of the earlier run writes nothing, even a table further along.
    await other.updateTables('er-1', 'run-1', [{ table: 'local.crm.customers', status: 'pending' }, { table: 'local.crm.orders', status: 'verified' }]);
    expect(await shown()).toBe('verified/running');
    // A stale report of this run, from another process, moves no table back; a newer detail at the same status lands.
    await other.updateTables('er-1', 'run-2', [{ table: 'local.crm.customers', status: 'running' }, { table: 'local.crm.orders', status: 'running', detail: 'deleting' }]);
    expect(await shown()).toBe('verified/running:deleting');
    await other.updateTables('er-1', 'run-2', [{ table: 'local.crm.customers', status: 'pending' }, { table: 'local.crm.orders', status: 'pending' }, { table: 'local.crm.unknown', status: 'verified' }]);
    expect(await shown()).toBe('verified/running:deleting');
    // Two writers at once, each with one table done: both land (the later merges onto the earlier).
    await Promise.all([
      ledger.updateTables('er-1', 'run-2', [{ table: 'local.crm.orders', status: 'failed', detail: 'verification' }]),
      other.updateTables('er-1', 'run-2', [{ table: 'local.crm.customers', status: 'failed' }, { table: 'local.crm.orders', status: 'running' }]),
    ]);
    expect(await shown()).toBe('verified/failed:verification');
    // Once the outcome is written, a report of the same run is dropped too; no write added an audit entry.
    await ledger.transition('er-1', { status: 'verified', tables: [{ table: 'local.crm.customers', status: 'verified' }, { table: 'local.crm.orders', status: 'verified' }] }, audit('er-1', 'erasure.verified'));
    await other.updateTables('er-1', 'run-2', [{ table: 'local.crm.orders', status: 'failed' }]);
    expect(await shown()).toBe('verified/verified');
    await other.updateTables('er-none', 'run-2', [{ table: 'local.crm.orders', status: 'running' }]);
    expect((await ledger.auditEntries()).map((e) => e.action)).toEqual(['erasure.filed', 'erasure.started', 'erasure.retry', 'erasure.started', 'erasure.verified']);
    await other.close();
    await ledger.close();
  });

  it('extends a deadline once, with its audit entry, keeps it through moves and a reopen, and refuses a second or a verified one', async () => {
    const { ledger, location } = await fresh();
    await ledger.create(request('er-1'), audit('er-1'));
    await ledger.create(request('er-2', 'TICKET-2'), audit('er-2'));
    const extensionAudit = (id: string): AuditInput => ({ actor: 'person:olivia', action: 'erasure.extended', requestId: id, outcome: 'extended months=2' });
    const before = await ledger.get('er-1');
    const extended = await ledger.extend('er-1', { months: 2, reason: 'The subject asked for a copy of their data first', by: 'person:olivia' }, extensionAudit('er-1'));
    expect(extended.extension).toMatchObject({ months: 2, reason: 'The subject asked for a copy of their data first', by: 'person:olivia' });
    expect(Date.parse(extended.extension!.at)).not.toBeNaN();
    // Not a move of the erasure: status and updatedAt stay.
    expect(extended).toMatchObject({ status: 'received', updatedAt: before?.updatedAt });
    expect(await ledger.get('er-1')).toEqual(extended);
    await expect(ledger.extend('er-1', { months: 1, reason: 'again', by: 'person:olivia' }, extensionAudit('er-1'))).rejects.toMatchObject({ code: 'extension-refused' });
    await expect(ledger.extend('er-none', { months: 1, reason: 'none', by: 'person:olivia' }, extensionAudit('er-none'))).rejects.toMatchObject({ code: 'not-found' });
    // Moves and progress keep it.
    await ledger.transition('er-1', { status: 'running', attempts: 1, runId: 'run-1' }, audit('er-1', 'erasure.started'));
    await ledger.updateTables('er-1', 'run-1', [{ table: 'local.crm.customers', status: 'running' }]);
    await ledger.transition('er-1', { status: 'verified' }, audit('er-1', 'erasure.verified'));
    const reader = store.open(location);
    expect((await reader.get('er-1'))?.extension).toEqual(extended.extension);
    expect((await reader.list('verified'))[0]?.extension).toEqual(extended.extension);
    await reader.close();
    // A verified request has no deadline left to extend.
    await ledger.transition('er-2', { status: 'running', attempts: 1 }, audit('er-2', 'erasure.started'));
    await ledger.transition('er-2', { status: 'verified' }, audit('er-2', 'erasure.verified'));
    await expect(ledger.extend('er-2', { months: 1, reason: 'late', by: 'person:olivia' }, extensionAudit('er-2'))).rejects.toMatchObject({ code: 'extension-refused' });
    expect((await ledger.get('er-2'))?.extension).toBeUndefined();
    // One entry for the one extension; the refused ones wrote none; the chain holds.
    const entries = await ledger.auditEntries();
    expect(entries.filter((e) => e.action === 'erasure.extended').map((e) => e.requestId)).toEqual(['er-1']);
    expect(verifyAuditChain(entries).valid).toBe(true);
    await ledger.close();
  });

  it('returns the request already filed when the caller says it is the same, inside the transaction', async () => {
    const { ledger, location } = await fresh();
    const other = store.open(location); // another process
    const first = await other.create(request('er-1'), audit('er-1'), () => true);
    const second = await ledger.create(request('er-2'), audit('er-2'), (existing) => existing.subjects[0]!.pseudonyms.includes('s1.AAAA'));
    const third = await ledger.create(request('er-3', 'TICKET-2'), audit('er-3'), () => true); // another reference: new
    expect([first.created, second.created, third.created]).toEqual([true, false, true]);
    expect(second.request.id).toBe('er-1');
    expect((await ledger.list()).map((r) => r.id)).toEqual(['er-1', 'er-3']);
    expect(await ledger.auditEntries()).toHaveLength(2);
    await other.close();
    await ledger.close();
  });

  it('files a second request under a reference when the caller says it is not the same', async () => {
    const { ledger } = await fresh();
    await ledger.create(request('er-1'), audit('er-1'), () => false);
    const second = await ledger.create(request('er-2'), audit('er-2'), () => false);
    expect(second.created).toBe(true);
    expect((await ledger.list()).map((r) => r.id).sort()).toEqual(['er-1', 'er-2']);
    await ledger.close();
  });

  it('ends with one request when two instances file the same reference at once', async () => {
    const { ledger, location } = await fresh();
    const other = store.open(location);
    for (let round = 1; round <= 5; round++) {
      const [a, b] = await Promise.all([
        ledger.create(request(`er-a${round}`, `DSR-${round}`), audit(`er-a${round}`), () => true),
        other.create(request(`er-b${round}`, `DSR-${round}`), audit(`er-b${round}`), () => true),
      ]);
      expect([a.created, b.created].filter(Boolean)).toHaveLength(1);
      expect(a.request.id).toBe(b.request.id);
    }
    expect(await ledger.list()).toHaveLength(5);
    expect(verifyAuditChain(await ledger.auditEntries())).toEqual({ entries: 5, valid: true });
    await other.close();
    await ledger.close();
  });

  it('keeps one unbroken audit chain when two writers append at once', async () => {
    const { ledger, location } = await fresh();
    const other = store.open(location);
    await Promise.all(
      Array.from({ length: 8 }, (_, i) => {
        const writer = i % 2 === 0 ? ledger : other;
        return writer.create(request(`er-${i}`, `T-${i}`), audit(`er-${i}`));
      }),
    );
    await Promise.all([ledger.transition('er-0', { status: 'running' }, audit('er-0', 'erasure.started')), other.transition('er-1', { status: 'running' }, audit('er-1', 'erasure.started'))]);
    const entries = await other.auditEntries();
    expect(verifyAuditChain(entries)).toEqual({ entries: 10, valid: true });
    expect(entries.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    await other.close();
    await ledger.close();
  });

  it('commits nothing of a failed create, audit entry included', async () => {
    const { ledger } = await fresh();
    await ledger.create(request('er-1'), audit('er-1'));
    await expect(ledger.create(request('er-1'), audit('er-1'))).rejects.toThrow();
    expect(await ledger.auditEntries()).toHaveLength(1);
    await ledger.close();
  });

  it('sees a subject filed through itself at once, after its set was already read', async () => {
    const { ledger } = await fresh();
    await ledger.create(request('er-1'), audit('er-1'));
    expect((await ledger.erasedPseudonyms('email')).has('s1.AAAA')).toBe(true);
    await ledger.create({ ...request('er-2', 'T-2'), subjects: [{ context: 'email', pseudonyms: ['s1.CCCC'] }] }, audit('er-2'));
    expect((await ledger.erasedPseudonyms('email')).has('s1.CCCC')).toBe(true);
    await ledger.close();
  });

  it('sees pseudonyms another process filed', async () => {
    const { ledger, location } = await fresh();
    expect((await ledger.erasedPseudonyms('email')).size).toBe(0);
    const other = store.open(location);
    await other.create(request('er-9'), audit('er-9'));
    await other.close();
    expect((await ledger.erasedPseudonyms('email')).has('s1.AAAA')).toBe(true);
    await ledger.close();
  });

  describe('lifting suppression', () => {
    it('lifts: the subject is no longer in the erased set, here and for another process, and the lift is kept', async () => {
      const { ledger, location } = await fresh();
      await fileAndFinish(ledger, request('er-1'));
      await ledger.create({ ...request('er-2', 'T-2'), subjects: [{ context: 'email', pseudonyms: ['s1.CCCC'] }] }, audit('er-2'));
      const other = store.open(location);
      expect((await other.erasedPseudonyms('email')).has('s1.AAAA')).toBe(true); // read before the lift
      const lifted = await ledger.lift(lift('lf-1'), liftAudit(lift('lf-1')));
      expect(lifted).toMatchObject({ id: 'lf-1', reference: 'CONSENT-1', reason: 'consent', liftedBy: 'person:olivia', subjects: [{ context: 'email', pseudonyms: ['s1.AAAA', 's2.BBBB'] }] });
      expect([...(await ledger.erasedPseudonyms('email'))]).toEqual(['s1.CCCC']);
      expect([...(await other.erasedPseudonyms('email'))]).toEqual(['s1.CCCC']);
      expect(await other.lifts()).toEqual([lifted]);
      expect((await other.get('er-1'))?.subjects).toEqual(request('er-1').subjects); // the request and its evidence are unchanged
      await other.close();
      await ledger.close();
    });

    it('suppresses again when the subject is filed after the lift: the latest event wins', async () => {
      const { ledger } = await fresh();
      await fileAndFinish(ledger, request('er-1'));
      await ledger.lift(lift('lf-1'), liftAudit(lift('lf-1')));
      expect((await ledger.erasedPseudonyms('email')).size).toBe(0);
      await ledger.create(request('er-2', 'DSR-2'), audit('er-2'));
      expect([...(await ledger.erasedPseudonyms('email'))].sort()).toEqual(['s1.AAAA', 's2.BBBB']);
      await ledger.transition('er-2', { status: 'running' }, audit('er-2', 'erasure.started'));
      await ledger.transition('er-2', { status: 'failed' }, audit('er-2', 'erasure.failed'));
      await ledger.lift(lift('lf-2', ['s2.BBBB'], 'CONSENT-2'), liftAudit(lift('lf-2', ['s2.BBBB'], 'CONSENT-2'))); // one version is enough to name the subject
      expect((await ledger.erasedPseudonyms('email')).size).toBe(1);
      expect((await ledger.lifts()).map((l) => l.id)).toEqual(['lf-1', 'lf-2']);
      await ledger.close();
    });

    it('chains the lift in the audit log with count, reason and reference, and the chain verifies', async () => {
      const { ledger } = await fresh();
      await fileAndFinish(ledger, request('er-1'));
      await ledger.lift(lift('lf-1'), liftAudit(lift('lf-1')));
      const entries = await ledger.auditEntries();
      expect(verifyAuditChain(entries)).toEqual({ entries: 4, valid: true });
      expect(entries[3]).toMatchObject({ seq: 4, action: 'erasure.lifted', requestId: 'lf-1', actor: 'person:olivia', outcome: 'lifted 1 reason=consent reference=CONSENT-1' });
      expect(JSON.stringify(entries)).not.toContain('AAAA');
      await ledger.close();
    });

    it('refuses the whole lift, by index, when a subject is not suppressed or its erasure has not finished; commits nothing', async () => {
      const { ledger } = await fresh();
      await fileAndFinish(ledger, request('er-1'));
      await ledger.create({ ...request('er-2', 'T-2'), subjects: [{ context: 'email', pseudonyms: ['s1.PEND'] }] }, audit('er-2'));
      const twoSubjects = (id: string, second: { context: string; pseudonyms: string[] }): NewSuppressionLift => ({ ...lift(id), subjects: [{ context: 'email', pseudonyms: ['s1.AAAA'] }, second] });
      const notSuppressed = twoSubjects('lf-1', { context: 'vin', pseudonyms: ['s1.AAAA'] }); // the same pseudonym in another context is another subject
      await expect(ledger.lift(notSuppressed, liftAudit(notSuppressed))).rejects.toMatchObject({ code: 'not-suppressed', details: [{ index: 1, reason: 'not-suppressed' }] });
      const pending = twoSubjects('lf-2', { context: 'email', pseudonyms: ['s1.PEND'] });
      await expect(ledger.lift(pending, liftAudit(pending))).rejects.toMatchObject({ code: 'erasure-pending', details: [{ index: 1, reason: 'erasure-pending' }] });
      expect([...(await ledger.erasedPseudonyms('email'))].sort()).toEqual(['s1.AAAA', 's1.PEND', 's2.BBBB']);
      expect(await ledger.lifts()).toEqual([]);
      expect(await ledger.auditEntries()).toHaveLength(4);
      await ledger.close();
    });
  });

  describe('adding pseudonyms under further key versions (suppressions follow rotation)', () => {
    const coverage = { actor: 'service', keyVersion: 3 };

    it('adds them to a suppressed subject and to the erased set, seen by another process, audited with counts only', async () => {
      const { ledger, location } = await fresh();
      await ledger.create({ ...request('er-1'), subjects: [{ context: 'email', pseudonyms: ['s1.AAAA', 's2.BBBB'] }, { context: 'vin', pseudonyms: ['s1.VVVV'] }] }, audit('er-1'));
      const { request: extended, added } = await ledger.addPseudonyms('er-1', [{ subject: 0, pseudonyms: ['s3.CCCC', 's2.BBBB'] }, { subject: 1, pseudonyms: ['s3.WWWW'] }], coverage);
      expect(added).toBe(2);
      expect(extended.subjects).toEqual([{ context: 'email', pseudonyms: ['s1.AAAA', 's2.BBBB', 's3.CCCC'] }, { context: 'vin', pseudonyms: ['s1.VVVV', 's3.WWWW'] }]);
      const other = store.open(location);
      expect([...(await other.erasedPseudonyms('email'))].sort()).toEqual(['s1.AAAA', 's2.BBBB', 's3.CCCC']);
      expect([...(await other.erasedPseudonyms('vin'))].sort()).toEqual(['s1.VVVV', 's3.WWWW']);
      expect((await other.get('er-1'))?.subjects).toEqual(extended.subjects);
      expect((await other.get('er-1'))?.status).toBe('received'); // no move
      const entries = await other.auditEntries();
      expect(verifyAuditChain(entries)).toEqual({ entries: 2, valid: true });
      expect(entries[1]).toMatchObject({ seq: 2, actor: 'service', action: 'erasure.suppression-extended', requestId: 'er-1', outcome: 'added 2 pseudonym(s) of 2 subject(s) keyVersion=3' });
      expect(JSON.stringify(entries)).not.toMatch(/CCCC|WWWW|AAAA/);
      await other.close();
      await ledger.close();
    });

    it('is idempotent: what a subject holds already adds nothing and writes no audit entry', async () => {
      const { ledger } = await fresh();
      await ledger.create(request('er-1'), audit('er-1'));
      await ledger.addPseudonyms('er-1', [{ subject: 0, pseudonyms: ['s3.CCCC'] }], coverage);
      const again = await ledger.addPseudonyms('er-1', [{ subject: 0, pseudonyms: ['s3.CCCC', 's1.AAAA'] }], coverage);
      expect(again.added).toBe(0);
      expect(again.request.subjects).toEqual([{ context: 'email', pseudonyms: ['s1.AAAA', 's2.BBBB', 's3.CCCC'] }]);
      expect(verifyAuditChain(await ledger.auditEntries())).toEqual({ entries: 2, valid: true });
      await ledger.close();
    });

    it('leaves a lifted subject lifted, and answers not-found for an unknown request', async () => {
      const { ledger } = await fresh();
      await fileAndFinish(ledger, request('er-1'));
      await ledger.lift(lift('lf-1'), liftAudit(lift('lf-1')));
      const after = await ledger.addPseudonyms('er-1', [{ subject: 0, pseudonyms: ['s3.CCCC'] }], coverage);
      expect(after.added).toBe(0);
      expect(after.request.subjects).toEqual(request('er-1').subjects);
      expect((await ledger.erasedPseudonyms('email')).size).toBe(0);
      expect(await ledger.auditEntries()).toHaveLength(4);
      await expect(ledger.addPseudonyms('er-none', [{ subject: 0, pseudonyms: ['s3.CCCC'] }], coverage)).rejects.toMatchObject({ code: 'not-found' });
      await ledger.close();
    });

    it('lets a move whose write follows an addition by another process land, keeping the added pseudonyms', async () => {
      // The worker's end of a run: it read the request running, coverage extends it, then the verified move is written.
      const { ledger, location } = await fresh();
      await ledger.create(request('er-1'), audit('er-1'));
      await ledger.transition('er-1', { status: 'running', attempts: 1, runId: 'run-a' }, audit('er-1', 'erasure.started'));
      const certificate = { runId: 'run-a', verified: true };
      const moved = await store.interleave(
        location,
        (worker) => worker.transition('er-1', { status: 'verified', certificate, expected: { status: 'running', runId: 'run-a' } }, audit('er-1', 'erasure.verified')),
        async () => {
          expect((await ledger.addPseudonyms('er-1', [{ subject: 0, pseudonyms: ['s3.CCCC'] }], coverage)).added).toBe(1);
        },
      );
      const subjects = [{ context: 'email', pseudonyms: ['s1.AAAA', 's2.BBBB', 's3.CCCC'] }];
      expect(moved).toMatchObject({ status: 'verified', runId: 'run-a', certificate, subjects });
      expect(await ledger.get('er-1')).toMatchObject({ status: 'verified', runId: 'run-a', certificate, subjects });
      expect([...(await ledger.erasedPseudonyms('email'))].sort()).toEqual(['s1.AAAA', 's2.BBBB', 's3.CCCC']);
      const entries = await ledger.auditEntries();
      expect(entries.map((e) => e.action)).toEqual(['erasure.filed', 'erasure.started', 'erasure.suppression-extended', 'erasure.verified']);
      expect(verifyAuditChain(entries)).toEqual({ entries: 4, valid: true });
      await ledger.close();
    });

    it('adds each pseudonym once when two processes add the same at once, and the chain stays one', async () => {
      const { ledger, location } = await fresh();
      await ledger.create(request('er-1'), audit('er-1'));
      const other = store.open(location);
      const results = await Promise.all([ledger.addPseudonyms('er-1', [{ subject: 0, pseudonyms: ['s3.CCCC'] }], coverage), other.addPseudonyms('er-1', [{ subject: 0, pseudonyms: ['s3.CCCC'] }], coverage)]);
      expect(results.map((r) => r.added).sort()).toEqual([0, 1]);
      expect((await ledger.get('er-1'))?.subjects).toEqual([{ context: 'email', pseudonyms: ['s1.AAAA', 's2.BBBB', 's3.CCCC'] }]);
      expect(verifyAuditChain(await ledger.auditEntries())).toEqual({ entries: 2, valid: true });
      await other.close();
      await ledger.close();
    });
  });

  it('keeps a hash chain that verifies, and names the first entry that was changed or removed', async () => {
    const { ledger, location } = await fresh();
    for (let i = 1; i <= 5; i++) await ledger.create(request(`er-${i}`, `T-${i}`), audit(`er-${i}`));
    expect(verifyAuditChain(await ledger.auditEntries())).toEqual({ entries: 5, valid: true });
    await ledger.close();

    await store.changeOutcome(location, 3, 'failed');
    const tampered = store.open(location);
    expect(verifyAuditChain(await tampered.auditEntries())).toEqual({ entries: 5, valid: false, brokenAt: 3 });
    await tampered.close();

    await store.changeOutcome(location, 3, 'received');
    await store.removeEntry(location, 2);
    const cut = store.open(location);
    expect(verifyAuditChain(await cut.auditEntries())).toMatchObject({ valid: false, brokenAt: 3 });
    await cut.close();
  });
});

describe('SQLite ledger', () => {
  it('removes a lock a killed process left behind, and only an old one', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'ledger-'));
    const file = join(folder, 'erasure.db');
    await new SqliteErasureLedger(file).close();
    mkdirSync(`${file}.lock`);
    const old = new Date(Date.now() - 60_000);
    utimesSync(`${file}.lock`, old, old);
    const ledger = new SqliteErasureLedger(file);
    expect(existsSync(`${file}.lock`)).toBe(false);
    await ledger.create(request('er-1'), audit('er-1'));
    await ledger.close();
  });

  it('adds the extension column to a ledger from before extensions, keeping its requests', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'ledger-')), 'erasure.db');
    // The requests table as ledgers had it before deadline extensions: no extension column.
    const raw = new sqlite.Database(file);
    raw.exec(
      'CREATE TABLE erasure_requests (id TEXT PRIMARY KEY, reference TEXT NOT NULL, reason TEXT NOT NULL, filed_by TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, subjects TEXT NOT NULL, tables TEXT NOT NULL, run_id TEXT, step_id TEXT, error TEXT, certificate TEXT)',
    );
    raw.run("INSERT INTO erasure_requests (id, reference, reason, filed_by, status, created_at, updated_at, subjects, tables) VALUES ('er-old', 'OLD-1', 'gdpr-art17-1a', 'person:olivia', 'received', '2026-01-05T00:00:00.000Z', '2026-01-05T00:00:00.000Z', '[]', '[]')");
    raw.close();
    const ledger = new SqliteErasureLedger(file);
    expect((await ledger.get('er-old'))?.extension).toBeUndefined();
    const extended = await ledger.extend('er-old', { months: 1, reason: 'More time needed', by: 'person:olivia' }, { actor: 'person:olivia', action: 'erasure.extended', requestId: 'er-old', outcome: 'extended months=1' });
    expect(extended).toMatchObject({ id: 'er-old', reference: 'OLD-1', status: 'received', extension: { months: 1, reason: 'More time needed' } });
    await ledger.close();
  });
});

describe('DynamoDB ledger', () => {
  const freshTable = async (): Promise<string> => {
    const table = `erasure-ledger-${++tables}`;
    await ensureTable({ table, region: TEST_REGION, endpoint: endpoint() });
    return table;
  };


  it('never moves a request out of a final state', async () => {
    const ledger = new DynamoErasureLedger({ table: await freshTable(), region: TEST_REGION, endpoint: endpoint() });
    await ledger.create(request('er-1'), audit('er-1'));
    await expect(ledger.transition('er-1', { status: 'verified' }, audit('er-1', 'erasure.verified'))).rejects.toMatchObject({ code: 'ledger-conflict' });
    await ledger.transition('er-1', { status: 'running', attempts: 1 }, audit('er-1', 'erasure.started'));
    await ledger.transition('er-1', { status: 'verified' }, audit('er-1', 'erasure.verified'));
    for (const status of ['running', 'received', 'failed', 'verified'] as const) {
      await expect(ledger.transition('er-1', { status }, audit('er-1', 'erasure.again'))).rejects.toThrow(LedgerError);
    }
    expect((await ledger.auditEntries()).map((e) => e.action)).toEqual(['erasure.filed', 'erasure.started', 'erasure.verified']);
    await ledger.close();
  });

  it('refuses a move that another instance made first, with ledger-conflict and no audit entry', async () => {
    const table = await freshTable();
    const first = new DynamoErasureLedger({ table, region: TEST_REGION, endpoint: endpoint() });
    await first.create(request('er-1'), audit('er-1'));
    const held = heldClient();
    const second = new DynamoErasureLedger({ table, region: TEST_REGION, client: held.client });
    const late = second.transition('er-1', { status: 'running', attempts: 1, runId: 'run-b' }, audit('er-1', 'erasure.started'));
    await held.reachedWrite; // the second has read the request as received
    await first.transition('er-1', { status: 'running', attempts: 1, runId: 'run-a' }, audit('er-1', 'erasure.started'));
    held.release();
    await expect(late).rejects.toMatchObject({ name: 'LedgerError', code: 'ledger-conflict' });
    expect(await first.get('er-1')).toMatchObject({ status: 'running', attempts: 1, runId: 'run-a' });
    const entries = await first.auditEntries();
    expect(entries.map((e) => e.action)).toEqual(['erasure.filed', 'erasure.started']);
    expect(verifyAuditChain(entries).valid).toBe(true);
    await second.close();
    await first.close();
  });

  it('links an entry after the head another writer moved meanwhile, instead of forking the chain', async () => {
    const table = await freshTable();
    const first = new DynamoErasureLedger({ table, region: TEST_REGION, endpoint: endpoint() });
    await first.create(request('er-0', 'T-0'), audit('er-0'));
    const held = heldClient();
    const second = new DynamoErasureLedger({ table, region: TEST_REGION, client: held.client });
    const late = second.create(request('er-2', 'T-2'), audit('er-2'));
    await held.reachedWrite; // the second computed its entry after entry 1
    await first.create(request('er-1', 'T-1'), audit('er-1')); // entry 2 takes that place
    held.release();
    expect((await late).created).toBe(true);
    const entries = await first.auditEntries();
    expect(entries.map((e) => e.requestId)).toEqual(['er-0', 'er-1', 'er-2']);
    expect(verifyAuditChain(entries)).toEqual({ entries: 3, valid: true });
    await second.close();
    await first.close();
  });

  it('reads again when a filing of the subject lands between a lift\'s reads and its write, and refuses it then', async () => {
    const table = await freshTable();
    const first = new DynamoErasureLedger({ table, region: TEST_REGION, endpoint: endpoint() });
    await fileAndFinish(first, request('er-1'));
    const held = heldClient();
    const second = new DynamoErasureLedger({ table, region: TEST_REGION, client: held.client });
    const late = second.lift(lift('lf-1'), liftAudit(lift('lf-1')));
    await held.reachedWrite; // the second found er-1 verified and is about to remove the subject
    await first.create(request('er-2', 'DSR-2'), audit('er-2')); // filed again meanwhile
    held.release();
    await expect(late).rejects.toMatchObject({ code: 'erasure-pending' });
    expect([...(await first.erasedPseudonyms('email'))].sort()).toEqual(['s1.AAAA', 's2.BBBB']);
    expect(await first.lifts()).toEqual([]);
    expect(verifyAuditChain(await first.auditEntries())).toEqual({ entries: 4, valid: true });
    await second.close();
    await first.close();
  });

  it('returns the request another instance filed under the same reference while this one was writing', async () => {
    const table = await freshTable();
    const first = new DynamoErasureLedger({ table, region: TEST_REGION, endpoint: endpoint() });
    const held = heldClient();
    const second = new DynamoErasureLedger({ table, region: TEST_REGION, client: held.client });
    const late = second.create(request('er-b', 'DSR-1'), audit('er-b'), () => true);
    await held.reachedWrite; // the second found nothing under DSR-1
    const won = await first.create(request('er-a', 'DSR-1'), audit('er-a'), () => true);
    held.release();
    const lost = await late;
    expect([won.created, lost.created]).toEqual([true, false]);
    expect(lost.request.id).toBe('er-a');
    expect((await first.list()).map((r) => r.id)).toEqual(['er-a']);
    expect(await first.auditEntries()).toHaveLength(1);
    expect([...(await first.erasedPseudonyms('email'))].sort()).toEqual(['s1.AAAA', 's2.BBBB']);
    await second.close();
    await first.close();
  });

  describe('throttling', () => {
    /** Records the waits the ledger asks for instead of waiting (no test waits on the clock). */
    const recordingSleep = (waits: number[]) => (ms: number): Promise<void> => {
      waits.push(ms);
      return Promise.resolve();
    };

    /** A client that answers the next `count` calls with ThrottlingException, as DynamoDB does under load. */
    const throttledClient = (count: number): DynamoDBClient => {
      const client = dynamoClient();
      let left = count;
      client.middlewareStack.add(
        (next) => async (args) => {
          if (left > 0) {
            left--;
            throw new ThrottlingException({ message: 'Rate of requests exceeds the allowed throughput.', $metadata: { httpStatusCode: 400 } });
          }
          return next(args);
        },
        { step: 'initialize', name: 'injectThrottling' },
      );
      return client;
    };

    it('retries with growing waits and then answers', async () => {
      const table = await freshTable();
      await new DynamoErasureLedger({ table, region: TEST_REGION, endpoint: endpoint() }).create(request('er-1'), audit('er-1'));
      const waits: number[] = [];
      const ledger = new DynamoErasureLedger({
        table,
        region: TEST_REGION,
        client: throttledClient(3),
        retry: { maxAttempts: 6, baseDelayMs: 100, maxDelayMs: 10_000, sleep: recordingSleep(waits) },
      });
      expect([...(await ledger.erasedPseudonyms('email'))].sort()).toEqual(['s1.AAAA', 's2.BBBB']);
      expect(waits).toHaveLength(3);
      // full jitter: each wait is at most its ceiling, 100 ms doubled at each retry
      waits.forEach((ms, i) => {
        expect(ms).toBeLessThanOrEqual(100 * 2 ** i);
      });
      await ledger.close();
    });

    it('gives up after its attempts with ledger-unavailable, never an empty answer', async () => {
      const table = await freshTable();
      await new DynamoErasureLedger({ table, region: TEST_REGION, endpoint: endpoint() }).create(request('er-1'), audit('er-1'));
      const waits: number[] = [];
      const ledger = new DynamoErasureLedger({ table, region: TEST_REGION, client: throttledClient(1000), retry: { maxAttempts: 4, sleep: recordingSleep(waits) } });
      const failure = ledger.erasedPseudonyms('email');
      await expect(failure).rejects.toThrow(LedgerError);
      await expect(failure).rejects.toMatchObject({ code: 'ledger-unavailable' });
      expect(waits).toHaveLength(3);
      await expect(ledger.create(request('er-2', 'T-2'), audit('er-2'))).rejects.toMatchObject({ code: 'ledger-unavailable' });
      await ledger.close();
    });

    it('makes a pseudonymize call fail with ledger-unavailable rather than hand out an unchecked pseudonym', async () => {
      const table = await freshTable();
      const keyring = keyringOf([{ version: 1, state: 'active', root: new Uint8Array(64).fill(7) }]);
      const engine = engineOf(keyring);
      const [filed] = engine.pseudonymsUnder(keyring.readable(), 'email', ['sentinel.jane@example.com']);
      await new DynamoErasureLedger({ table, region: TEST_REGION, endpoint: endpoint() }).create({ ...request('er-1'), subjects: [{ context: 'email', pseudonyms: filed! }] }, audit('er-1'));
      const ledger = new DynamoErasureLedger({ table, region: TEST_REGION, client: throttledClient(1000), retry: { maxAttempts: 3, sleep: recordingSleep([]) } });
      const suppression = new ErasureSuppression(ledger, engine, keyring, { cacheSeconds: 5 });
      await expect(suppression.pseudonymize('email', ['sentinel.jane@example.com'], { deterministic: true })).rejects.toMatchObject({ code: 'ledger-unavailable' });
      await expect(suppression.reidentify('email', filed!)).rejects.toMatchObject({ code: 'ledger-unavailable' });
      await ledger.close();
    });
  });

  it('says ledger-unavailable when its table does not exist', async () => {
    const ledger = new DynamoErasureLedger({ table: 'no-such-ledger', region: TEST_REGION, endpoint: endpoint() });
    await expect(ledger.list()).rejects.toMatchObject({ code: 'ledger-unavailable', message: "the erasure ledger's DynamoDB table does not exist" });
    await ledger.close();
  });
});

/**
 * DynamoDB's side of throttling on the wire, in front of moto (which never throttles): while `throttling`, every
 * DynamoDB call is answered 400 ThrottlingException as DynamoDB answers it; otherwise calls go through to moto.
 */
async function throttlingProxy(target: string): Promise<{ endpoint: string; throttling: boolean; throttled: number; close(): Promise<void> }> {
  const upstream = new URL(target);
  const state = { throttling: false, throttled: 0 };
  const server: Server = createServer((incoming, answer) => {
    if (state.throttling && String(incoming.headers['x-amz-target'] ?? '').startsWith('DynamoDB_20120810.')) {
      state.throttled++;
      incoming.resume();
      answer.writeHead(400, { 'content-type': 'application/x-amz-json-1.0' });
      answer.end(JSON.stringify({ __type: 'com.amazonaws.dynamodb.v20120810#ThrottlingException', message: 'Rate of requests exceeds the allowed throughput.' }));
      return;
    }
    const onward = forward({ host: upstream.hostname, port: upstream.port, method: incoming.method, path: incoming.url, headers: incoming.headers }, (reply) => {
      answer.writeHead(reply.statusCode ?? 502, reply.headers);
      reply.pipe(answer);
    });
    onward.on('error', () => answer.destroy());
    incoming.pipe(onward);
  });
  await new Promise<void>((listening) => {
    server.listen(0, '127.0.0.1', listening);
  });
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    endpoint: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((closed) => {
        server.close(() => {
          closed();
        });
      }),
  });
}

/** A fresh ledger table on moto and a registry with one local table, for a service on the DynamoDB store. */
async function dynamoTableAndRegistry(): Promise<{ table: string; registry: string }> {
  const table = `erasure-ledger-${++tables}`;
  await ensureTable({ table, region: TEST_REGION, endpoint: endpoint() });
  const folder = mkdtempSync(join(tmpdir(), 'registry-'));
  const catalog = writeLocalCatalog(folder, [{ namespace: 'crm', name: 'customers', columns: { id: 'long', email: 'string' } }]);
  const registry = join(folder, 'registry.json');
  writeFileSync(registry, JSON.stringify({ catalog: { type: 'jdbc', name: 'local', ...catalog }, tables: [{ name: 'local.crm.customers', columns: { email: 'email' } }] }));
  return { table, registry };
}

describe('the service on the DynamoDB store', () => {
  it('answers 503 ledger-unavailable over HTTP while DynamoDB throttles the lookup, never an unchecked pseudonym, and withholds once it answers', async () => {
    const { table, registry } = await dynamoTableAndRegistry();
    const proxy = await throttlingProxy(endpoint());
    // Cache bound 0: every request reads the erased set from DynamoDB, so each one meets the throttling.
    const service = await startTestService({
      PSEUDO_ERASURE_REGISTRY_FILE: registry,
      PSEUDO_ERASURE_LEDGER: 'dynamodb',
      PSEUDO_ERASURE_LEDGER_TABLE: table,
      PSEUDO_ERASURE_CACHE_SECONDS: '0',
      PSEUDO_AWS_ENDPOINT: proxy.endpoint,
      AWS_REGION: TEST_REGION,
    });
    try {
      const officer = await service.createKey('officer', ['privacy-officer']);
      const subject = 'sentinel.throttled@example.com';
      const filed = await service.call('POST', '/v1/erasure-requests', { apiKey: officer, body: { reference: 'DSR-THROTTLED', reason: 'gdpr-art17-1a', subjects: [{ context: 'email', value: subject }] } });
      expect(filed.status).toBe(202);

      proxy.throttling = true;
      const refused = await service.call('POST', '/v1/pseudonymize', { apiKey: service.keys.pseudonymize, body: { context: 'email', values: [subject, 'sentinel.other@example.com'] } });
      expect(refused.status).toBe(503);
      expect(refused.headers.get('content-type')).toContain('application/problem+json');
      expect(refused.json).toMatchObject({ type: 'urn:pseudonymization:problem:ledger-unavailable' });
      expect(refused.text).not.toContain('sentinel');
      // Retried with backoff before giving up: more than one throttled call for the one request.
      expect(proxy.throttled).toBeGreaterThan(1);

      proxy.throttling = false;
      const answered = await service.call('POST', '/v1/pseudonymize', { apiKey: service.keys.pseudonymize, body: { context: 'email', values: [subject, 'sentinel.other@example.com'] } });
      expect(answered.status).toBe(200);
      expect(answered.json).toMatchObject({ pseudonyms: [null, expect.any(String) as unknown], erased: [0] });
    } finally {
      await service.close();
      await proxy.close();
    }
  });

  it('files over HTTP into the table and withholds the subject from reidentify', async () => {
    const { table, registry } = await dynamoTableAndRegistry();
    const service = await startTestService({
      PSEUDO_ERASURE_REGISTRY_FILE: registry,
      PSEUDO_ERASURE_LEDGER: 'dynamodb',
      PSEUDO_ERASURE_LEDGER_TABLE: table,
      PSEUDO_AWS_ENDPOINT: endpoint(),
      AWS_REGION: TEST_REGION,
    });
    try {
      const officer = await service.createKey('officer', ['privacy-officer']);
      const values = ['sentinel.jane@example.com', 'sentinel.kept@example.com'];
      const { pseudonyms } = (await service.call('POST', '/v1/pseudonymize', { apiKey: service.keys.pseudonymize, body: { context: 'email', values } })).json as { pseudonyms: string[] };
      const filed = await service.call('POST', '/v1/erasure-requests', { apiKey: officer, body: { reference: 'DSR-1', reason: 'gdpr-art17-1a', subjects: [{ context: 'email', value: values[0] }] } });
      expect(filed.status).toBe(202);
      const id = (filed.json as { id: string }).id;
      expect((await service.call('GET', `/v1/erasure-requests/${id}`, { apiKey: officer })).json).toMatchObject({ id, status: 'received' });
      const answer = await service.call('POST', '/v1/reidentify', { apiKey: service.keys.reidentify, body: { context: 'email', pseudonyms } });
      expect(answer.json).toEqual({ values: [null, values[1]], errors: [{ index: 0, reason: 'erased' }] });

      // What another instance reads from the table: the request, its pseudonyms, one audit entry.
      const reader = new DynamoErasureLedger({ table, region: TEST_REGION, endpoint: endpoint() });
      expect((await reader.list()).map((r) => r.id)).toEqual([id]);
      expect((await reader.erasedPseudonyms('email')).has(pseudonyms[0]!)).toBe(true);
      expect(verifyAuditChain(await reader.auditEntries())).toEqual({ entries: 1, valid: true });
      await reader.close();

      // The deadline's extension over HTTP: shown on the request, audited without its reason, once only.
      const reason = 'sentinel.jane@example.com asked for a copy first';
      const filedAt = (filed.json as { createdAt: string; deadline: string }).createdAt;
      expect((filed.json as { deadline: string }).deadline).toBe(deadlineOf(filedAt));
      const badMonths = await service.call('POST', `/v1/erasure-requests/${id}/extension`, { apiKey: officer, body: { reason, months: 3 } });
      expect(badMonths.status).toBe(400);
      const tooLong = await service.call('POST', `/v1/erasure-requests/${id}/extension`, { apiKey: officer, body: { reason: `${reason} ${'x'.repeat(500)}`, months: 1 } });
      expect(tooLong.status).toBe(400);
      for (const refused of [badMonths, tooLong]) expect(refused.text).not.toContain('sentinel');
      expect((await service.call('POST', `/v1/erasure-requests/${id}/extension`, { apiKey: service.keys.reidentify, body: { reason, months: 1 } })).status).toBe(403);
      const extended = await service.call('POST', `/v1/erasure-requests/${id}/extension`, { apiKey: officer, body: { reason, months: 2 } });
      expect(extended.status).toBe(200);
      const shown = (await service.call('GET', `/v1/erasure-requests/${id}`, { apiKey: officer })).json as { deadline: string; extension: { months: number; reason: string; by: string; at: string } };
      expect(shown).toEqual(extended.json);
      expect(shown.deadline).toBe(deadlineOf(filedAt, { months: 2 }));
      expect(shown.extension).toMatchObject({ months: 2, reason, by: expect.stringMatching(/^api-key:/) as unknown });
      const again = await service.call('POST', `/v1/erasure-requests/${id}/extension`, { apiKey: officer, body: { reason, months: 1 } });
      expect(again.status).toBe(409);
      expect(again.json).toMatchObject({ type: 'urn:pseudonymization:problem:extension-refused' });
      expect(again.text).not.toContain('sentinel');
      const entries = (await service.call('GET', `/v1/erasure-requests/${id}/audit`, { apiKey: officer })).json as { entries: { action: string; outcome: string }[] };
      expect(entries.entries.map((e) => e.action)).toEqual(['erasure.filed', 'erasure.extended']);
      expect(entries.entries[1]!.outcome).toBe(`extended months=2 deadline=${shown.deadline}`);
    } finally {
      await service.close();
    }
  });
});

describe('an answer deadline', () => {
  it('is one calendar month from filing, plus the extension, counted from the filing date (UTC)', () => {
    expect(deadlineOf('2026-03-15T10:00:00.000Z')).toBe('2026-04-15T10:00:00.000Z');
    expect(deadlineOf('2026-01-31T23:30:00.000Z')).toBe('2026-02-28T23:30:00.000Z');
    expect(deadlineOf('2028-01-31T08:00:00.000Z')).toBe('2028-02-29T08:00:00.000Z');
    expect(deadlineOf('2026-01-31T08:00:00.000Z', { months: 2 })).toBe('2026-04-30T08:00:00.000Z');
    expect(deadlineOf('2026-11-30T08:00:00.000Z', { months: 1 })).toBe('2027-01-30T08:00:00.000Z');
  });

  it('can be extended only before the first month runs out', () => {
    const filedAt = '2026-03-15T10:00:00.000Z';
    expect(() => { checkWithinFirstMonth(filedAt, Date.parse('2026-04-15T10:00:00.000Z')); }).not.toThrow();
    expect(() => { checkWithinFirstMonth(filedAt, Date.parse('2026-04-15T10:00:00.001Z')); }).toThrow(expect.objectContaining({ code: 'extension-refused' }) as Error);
  });
});
