/** The erasure ledger contract, run against every store (today: SQLite on a file). */
import { mkdirSync, mkdtempSync, utimesSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sqlite from 'node-sqlite3-wasm';
import { describe, expect, it } from 'vitest';
import { verifyAuditChain, type ErasureLedger, type NewErasureRequest } from '../../api/erasure/ledger.ts';
import { SqliteErasureLedger } from '../../api/erasure/sqliteLedger.ts';

const STORES: { name: string; open: (file: string) => ErasureLedger }[] = [{ name: 'sqlite', open: (file) => new SqliteErasureLedger(file) }];

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

const audit = (requestId: string, action = 'erasure.filed') => ({ actor: 'person:olivia', action, requestId, outcome: 'received' });

describe.each(STORES)('erasure ledger: $name', ({ open }) => {
  const fresh = (): { ledger: ErasureLedger; file: string } => {
    const file = join(mkdtempSync(join(tmpdir(), 'ledger-')), 'erasure.db');
    return { ledger: open(file), file };
  };

  it('stores a request with its subjects and audit entry, and keeps them across a reopen', async () => {
    const { ledger, file } = fresh();
    const { request: created, created: isNew } = await ledger.create(request('er-1'), audit('er-1'));
    expect(isNew).toBe(true);
    expect(created).toMatchObject({ id: 'er-1', status: 'received', attempts: 0, reference: 'TICKET-1', reason: 'gdpr-art17-1a' });
    await ledger.close();
    const again = open(file);
    expect(await again.get('er-1')).toEqual(created);
    expect(await again.auditEntries()).toHaveLength(1);
    expect([...(await again.erasedPseudonyms('email'))].sort()).toEqual(['s1.AAAA', 's2.BBBB']);
    expect((await again.erasedPseudonyms('vin')).size).toBe(0);
    await again.close();
  });

  it('moves a request through its states with an audit entry each, and lists by state', async () => {
    const { ledger } = fresh();
    await ledger.create(request('er-1'), audit('er-1'));
    await ledger.create(request('er-2', 'TICKET-2'), audit('er-2'));
    await ledger.transition('er-1', { status: 'running', attempts: 1, runId: 'run-1' }, audit('er-1', 'erasure.started'));
    const done = await ledger.transition('er-1', { status: 'verified', certificate: { result: 'verified' }, tables: [{ table: 'local.crm.customers', status: 'verified' }] }, audit('er-1', 'erasure.verified'));
    expect(done).toMatchObject({ status: 'verified', attempts: 1, runId: 'run-1', certificate: { result: 'verified' } });
    expect((await ledger.list('received')).map((r) => r.id)).toEqual(['er-2']);
    expect((await ledger.list('verified')).map((r) => r.id)).toEqual(['er-1']);
    expect(await ledger.list()).toHaveLength(2);
    expect((await ledger.auditEntries()).map((e) => e.action)).toEqual(['erasure.filed', 'erasure.filed', 'erasure.started', 'erasure.verified']);
    await expect(ledger.transition('nope', { status: 'failed' }, audit('nope'))).rejects.toThrow('no erasure request with this id');
    await ledger.close();
  });

  it('returns the request already filed when the caller says it is the same, inside the transaction', async () => {
    const { ledger, file } = fresh();
    const other = open(file); // another process
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

  it('commits nothing of a failed create, audit entry included', async () => {
    const { ledger } = fresh();
    await ledger.create(request('er-1'), audit('er-1'));
    await expect(ledger.create(request('er-1'), audit('er-1'))).rejects.toThrow();
    expect(await ledger.auditEntries()).toHaveLength(1);
    await ledger.close();
  });

  it('sees a subject filed through itself at once, after its set was already read', async () => {
    const { ledger } = fresh();
    await ledger.create(request('er-1'), audit('er-1'));
    expect((await ledger.erasedPseudonyms('email')).has('s1.AAAA')).toBe(true);
    await ledger.create({ ...request('er-2', 'T-2'), subjects: [{ context: 'email', pseudonyms: ['s1.CCCC'] }] }, audit('er-2'));
    expect((await ledger.erasedPseudonyms('email')).has('s1.CCCC')).toBe(true);
    await ledger.close();
  });

  it('sees pseudonyms another process filed', async () => {
    const { ledger, file } = fresh();
    expect((await ledger.erasedPseudonyms('email')).size).toBe(0);
    const other = open(file);
    await other.create(request('er-9'), audit('er-9'));
    await other.close();
    expect((await ledger.erasedPseudonyms('email')).has('s1.AAAA')).toBe(true);
    await ledger.close();
  });

  it('keeps a hash chain that verifies, and names the first entry that was changed or removed', async () => {
    const { ledger, file } = fresh();
    for (let i = 1; i <= 5; i++) await ledger.create(request(`er-${i}`, `T-${i}`), audit(`er-${i}`));
    expect(verifyAuditChain(await ledger.auditEntries())).toEqual({ entries: 5, valid: true });
    await ledger.close();

    const raw = new sqlite.Database(file);
    raw.run("UPDATE audit_log SET outcome = 'failed' WHERE seq = 3");
    raw.close();
    const tampered = open(file);
    expect(verifyAuditChain(await tampered.auditEntries())).toEqual({ entries: 5, valid: false, brokenAt: 3 });
    await tampered.close();

    const raw2 = new sqlite.Database(file);
    raw2.run("UPDATE audit_log SET outcome = 'received' WHERE seq = 3");
    raw2.run('DELETE FROM audit_log WHERE seq = 2');
    raw2.close();
    const cut = open(file);
    expect(verifyAuditChain(await cut.auditEntries())).toMatchObject({ valid: false, brokenAt: 3 });
    await cut.close();
  });
});

describe('SQLite ledger', async () => {
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
});
