/**
 * The SQLite erasure ledger across starts, kills and a full disk (issue 16, faults 8, 11, 12):
 *
 * - a service that has had a ledger refuses to start without it (missing or emptied file: `npm start` exits 2
 *   naming the file, and recreates nothing); a ledger restored from an older backup, or another ledger, is refused
 *   against the head record; the restored file serves the erasure again (the subject stays withheld);
 * - the ledger deleted together with its head record while the keyring and API keys remain is refused too (exit 2
 *   naming the file and `npm run audit -- init`); only that explicit command makes a new, empty ledger, and a true
 *   first start with erasure on still creates everything at once;
 * - a path that cannot hold a ledger (a folder, a file in the folder path) is a ConfigError naming the setting;
 * - a process SIGKILLed inside a write leaves a lock that the next open clears at once, rolling back what the
 *   killed process had not committed and keeping everything it had; a live holder's lock is respected;
 * - a full disk answers 503 ledger-unavailable with SQLite's code in the log, and once space returns, every
 *   acknowledged filing is in the ledger.
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bootstrapLocal, createErasureLedger } from '../../api/bootstrap.ts';
import { ApiKeyRegistry } from '../../api/auth/apiKeys.ts';
import { apiKeyDocumentsFor } from '../../api/auth/fromConfig.ts';
import type { Config } from '../../api/config/config.ts';
import { verifyAuditChain, type AuditInput, type NewErasureRequest } from '../../api/erasure/ledger.ts';
import { SqliteErasureLedger } from '../../api/erasure/sqliteLedger.ts';
import { ConfigError, LedgerError } from '../../api/errors.ts';
import { createLogger } from '../../api/observability/logger.ts';
import { startServer, type RunningServer } from '../../api/server.ts';
import { writeLocalCatalog } from '../support/catalog.ts';
import { call, testConfig } from '../support/service.ts';

const JANE = 'sentinel.jane@example.com';
const work = mkdtempSync(join(tmpdir(), 'ledger-startup-'));
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

const filed = (id: string): NewErasureRequest => ({
  id,
  reference: `REF-${id}`,
  reason: 'gdpr-art17-1a',
  filedBy: 'person:olivia',
  subjects: [{ context: 'email', pseudonyms: [`p.${id}`] }],
  tables: [],
});
const entry = (requestId: string): AuditInput => ({ actor: 'service', action: 'erasure.file', requestId, outcome: 'received' });

function folder(name: string): string {
  const path = join(work, name);
  mkdirSync(path, { recursive: true });
  return path;
}

function registryFile(dir: string): string {
  const catalog = writeLocalCatalog(dir, [{ namespace: 'crm', name: 'customers', columns: { id: 'long', email: 'string' } }]);
  const file = join(dir, 'registry.json');
  writeFileSync(file, JSON.stringify({ catalog: { type: 'jdbc', name: 'local', ...catalog }, tables: [{ name: 'local.crm.customers', columns: { email: 'email' } }] }));
  return file;
}

/** `npm start` as a process (node with tsx, no bundle), run to its exit: for starts that must be refused. */
function startRefused(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return runScript('api/main.ts', [], env);
}

/** A script of this repository as a process (node with tsx), run to its exit. */
function runScript(script: string, args: readonly string[], env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    execFile('node', ['--import', 'tsx', script, ...args], { env: { ...process.env, PSEUDO_PORT: '0', PSEUDO_POLICY_FILE: 'test/fixtures/policies.json', ...env }, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, output: stdout + stderr });
    });
  });
}

interface Started {
  readonly running: RunningServer;
  readonly logs: () => string;
}

/** The service in this process as main.ts starts it (bootstrap, then the server), without the erasure worker. */
async function start(config: Config): Promise<Started> {
  const lines: string[] = [];
  const logger = createLogger('trace', { write: (line: string) => void lines.push(line) });
  await bootstrapLocal(config, logger);
  return { running: await startServer(config, { logger }), logs: () => lines.join('') };
}

async function keys(config: Config): Promise<{ officer: string; pseudonymize: string; reidentify: string }> {
  const registry = new ApiKeyRegistry(apiKeyDocumentsFor(config.apiKeys));
  return {
    officer: (await registry.create('officer', ['privacy-officer'], undefined)).key,
    pseudonymize: (await registry.create('spark', ['pseudonymize'], undefined)).key,
    reidentify: (await registry.create('steward', ['reidentify'], undefined)).key,
  };
}

describe('a service that has had an erasure ledger', () => {
  it('refuses to start without it (missing or 0 bytes: exit 2 naming the file, nothing recreated); restored, it still withholds the erased subject', async () => {
    const dir = folder('lost');
    const dataDir = join(dir, 'data');
    const env = { PSEUDO_DATA_DIR: dataDir, PSEUDO_ERASURE_REGISTRY_FILE: registryFile(dir) };
    const config = testConfig(dataDir, env);
    const first = await start(config);
    const key = await keys(config);
    const url = first.running.url;
    const pseudonym = ((await call(url, 'POST', '/v1/pseudonymize', { apiKey: key.pseudonymize, body: { context: 'email', values: [JANE] } })).json as { pseudonyms: string[] }).pseudonyms[0]!;
    expect((await call(url, 'POST', '/v1/erasure-requests', { apiKey: key.officer, body: { reference: 'GDPR-1', reason: 'gdpr-art17-1a', subjects: [{ context: 'email', value: JANE }] } })).status).toBe(202);
    await first.running.close();
    const ledgerFile = config.erasure.ledgerFile;
    const backup = join(dir, 'backup.db');
    copyFileSync(ledgerFile, backup);

    rmSync(ledgerFile);
    const missing = await startRefused(env);
    expect(missing.code).toBe(2);
    expect(missing.output).toContain(`PSEUDO_ERASURE_LEDGER_FILE: the erasure ledger ${ledgerFile} is missing`);
    expect(missing.output).toContain('restore the file from its latest backup');
    expect(missing.output).not.toContain(JANE);
    expect(existsSync(ledgerFile)).toBe(false);

    writeFileSync(ledgerFile, '');
    const emptied = await startRefused(env);
    expect(emptied.code).toBe(2);
    expect(emptied.output).toContain(`the erasure ledger ${ledgerFile} is empty (0 bytes)`);
    expect(statSync(ledgerFile).size).toBe(0);

    copyFileSync(backup, ledgerFile);
    const restored = await start(config);
    try {
      const answer = await call(restored.running.url, 'POST', '/v1/reidentify', { apiKey: key.reidentify, body: { context: 'email', pseudonyms: [pseudonym] } });
      expect(answer.json).toEqual({ values: [null], errors: [{ index: 0, reason: 'erased' }] });
    } finally {
      await restored.running.close();
    }
  });

  it('refuses a ledger restored from an older backup, and another ledger, naming both files; accepts one that went further', async () => {
    const dir = folder('rolled-back');
    const file = join(dir, 'ledger.db');
    const headFile = join(dir, 'data', 'erasure-ledger.head.json');
    const opened = SqliteErasureLedger.open(file, headFile);
    expect(opened.created).toBe(true);
    const ledger = opened.ledger;
    await ledger.create(filed('er-1'), entry('er-1'));
    copyFileSync(file, join(dir, 'old.db'));
    await ledger.create(filed('er-2'), entry('er-2'));
    const head = JSON.parse(readFileSync(headFile, 'utf8')) as { seq: number; hash: string };
    expect(head).toMatchObject({ seq: 2, hash: (await ledger.auditEntries())[1]!.hash });
    await ledger.close();

    copyFileSync(join(dir, 'old.db'), file);
    expect(() => SqliteErasureLedger.open(file, headFile)).toThrow(ConfigError);
    expect(() => SqliteErasureLedger.open(file, headFile)).toThrow(`the erasure ledger ${file} ends at audit entry 1, behind entry 2 recorded in ${headFile}`);

    rmSync(file);
    const other = new SqliteErasureLedger(file);
    await other.create(filed('er-x'), entry('er-x'));
    await other.create(filed('er-y'), entry('er-y'));
    await other.close();
    expect(() => SqliteErasureLedger.open(file, headFile)).toThrow(`the erasure ledger ${file} is not the one recorded in ${headFile}`);

    // Entries appended by a tool that keeps no head record leave the ledger ahead of it: accepted, and recorded.
    rmSync(file);
    copyFileSync(join(dir, 'old.db'), file);
    writeFileSync(headFile, JSON.stringify({ format: 'pseudonymization-ledger-head/v1', ledger: file, seq: 1, hash: (await readEntries(file))[0]!.hash, updatedAt: '' }));
    const tool = new SqliteErasureLedger(file);
    await tool.create(filed('er-2b'), entry('er-2b'));
    await tool.create(filed('er-3'), entry('er-3'));
    await tool.close();
    const ahead = SqliteErasureLedger.open(file, headFile);
    expect(ahead.created).toBe(false);
    await ahead.ledger.close();
    expect(JSON.parse(readFileSync(headFile, 'utf8'))).toMatchObject({ seq: 3 });

    writeFileSync(headFile, 'not json');
    expect(() => SqliteErasureLedger.open(file, headFile)).toThrow(`PSEUDO_DATA_DIR: the erasure ledger's head record ${headFile} is damaged`);
  });

  it('refuses a start when the ledger and its head record are both gone but the keyring and API keys remain; audit init makes a new one knowingly', async () => {
    const dir = folder('lost-both');
    const dataDir = join(dir, 'data');
    const env = { PSEUDO_DATA_DIR: dataDir, PSEUDO_ERASURE_REGISTRY_FILE: registryFile(dir) };
    const config = testConfig(dataDir, env);
    const first = await start(config);
    const key = await keys(config);
    expect((await call(first.running.url, 'POST', '/v1/erasure-requests', { apiKey: key.officer, body: { reference: 'GDPR-1', reason: 'gdpr-art17-1a', subjects: [{ context: 'email', value: JANE }] } })).status).toBe(202);
    await first.running.close();
    const { ledgerFile, ledgerHeadFile } = config.erasure;

    // rm data/erasure-ledger.*
    rmSync(ledgerFile);
    rmSync(ledgerHeadFile);
    const refused = await startRefused(env);
    expect(refused.code).toBe(2);
    expect(refused.output).toContain(`cannot start: PSEUDO_ERASURE_LEDGER_FILE: the erasure ledger ${ledgerFile} and its head record ${ledgerHeadFile} are missing`);
    expect(refused.output).toContain(`a keyring (${join(dataDir, 'keyring.json')})`);
    expect(refused.output).toContain('npm run audit -- init');
    expect(refused.output).not.toContain(JANE);
    expect(existsSync(ledgerFile)).toBe(false);
    expect(existsSync(ledgerHeadFile)).toBe(false);
    // A 0-byte file in its place is no ledger either.
    writeFileSync(ledgerFile, '');
    expect((await startRefused(env)).code).toBe(2);
    expect(statSync(ledgerFile).size).toBe(0);

    const init = await runScript('api/cli.ts', ['audit', 'init'], env);
    expect(init.code, init.output).toBe(0);
    expect(JSON.parse(init.output)).toEqual({ created: { ledger: ledgerFile, headRecord: ledgerHeadFile } });
    expect(JSON.parse(readFileSync(ledgerHeadFile, 'utf8'))).toMatchObject({ seq: 0, ledger: ledgerFile });
    const again = await runScript('api/cli.ts', ['audit', 'init'], env);
    expect(again.code).toBe(1);
    expect(again.output).toContain(`the head record ${ledgerHeadFile} says a ledger exists: none is created`);

    const started = await start(config);
    try {
      const list = await call(started.running.url, 'GET', '/v1/erasure-requests', { apiKey: key.officer });
      expect(list.status).toBe(200);
      expect(list.json).toMatchObject({ requests: [] });
    } finally {
      await started.running.close();
    }
  });

  it('a true first start with erasure on creates the ledger with everything else; turning erasure on later needs audit init', async () => {
    const silent = createLogger('fatal', { write: () => undefined });
    const dir = folder('first-start');
    const registry = registryFile(dir);
    const on = testConfig(join(dir, 'data'), { PSEUDO_ERASURE_REGISTRY_FILE: registry });
    await bootstrapLocal(on, silent);
    for (const file of ['keyring.json', 'api-keys.json', 'bootstrap-api-key', 'erasure-ledger.db', 'erasure-ledger.head.json']) expect(existsSync(join(dir, 'data', file)), file).toBe(true);
    await bootstrapLocal(on, silent);

    // Erasure off at the first start: no ledger, and none is needed. Turned on later, the files cannot tell this from a lost ledger.
    const later = testConfig(join(dir, 'later'));
    await bootstrapLocal(later, silent);
    expect(existsSync(later.erasure.ledgerFile)).toBe(false);
    expect(existsSync(later.erasure.ledgerHeadFile)).toBe(false);
    const laterOn = testConfig(join(dir, 'later'), { PSEUDO_ERASURE_REGISTRY_FILE: registry });
    await expect(bootstrapLocal(laterOn, silent)).rejects.toThrow('If this installation never had a ledger (erasure is turned on for the first time), create an empty one knowingly with npm run audit -- init');
    expect(existsSync(laterOn.erasure.ledgerFile)).toBe(false);
    await createErasureLedger(laterOn);
    await bootstrapLocal(laterOn, silent);
  });

  it('audit init is refused over an existing ledger, and for the DynamoDB store (exit 2); --help exits 0', async () => {
    const dir = folder('init');
    const file = join(dir, 'ledger.db');
    const env = { PSEUDO_DATA_DIR: join(dir, 'data'), PSEUDO_ERASURE_LEDGER_FILE: file };
    const ledger = new SqliteErasureLedger(file);
    await ledger.create(filed('er-1'), entry('er-1'));
    await ledger.close();
    const refused = await runScript('api/cli.ts', ['audit', 'init'], env);
    expect(refused.code).toBe(1);
    expect(refused.output).toContain(`an erasure ledger exists at ${file}: none is created`);
    expect(existsSync(join(dir, 'data', 'erasure-ledger.head.json'))).toBe(false);
    const dynamo = await runScript('api/cli.ts', ['audit', 'init'], { PSEUDO_DATA_DIR: join(dir, 'data'), PSEUDO_ERASURE_LEDGER: 'dynamodb', PSEUDO_ERASURE_LEDGER_TABLE: 'ledger' });
    expect(dynamo.code).toBe(2);
    expect(dynamo.output).toContain('PSEUDO_ERASURE_LEDGER: audit init creates a SQLite ledger');
    const help = await runScript('api/cli.ts', ['audit', 'init', '--help'], env);
    expect(help.code).toBe(0);
    expect(help.output).toContain('init               create a new, empty SQLite ledger');
    expect((await runScript('api/cli.ts', ['audit', 'init', '--since', '2026-01-01'], env)).code).toBe(2);
  });

  it('adopts a ledger from before head records, and records the head at its first open', async () => {
    const dir = folder('adopted');
    const file = join(dir, 'ledger.db');
    const before = new SqliteErasureLedger(file);
    await before.create(filed('er-1'), entry('er-1'));
    await before.close();
    const headFile = join(dir, 'head.json');
    const { ledger, created } = SqliteErasureLedger.open(file, headFile);
    await ledger.close();
    expect(created).toBe(false);
    expect(JSON.parse(readFileSync(headFile, 'utf8'))).toMatchObject({ seq: 1, ledger: file });
    expect(statSync(headFile).mode & 0o777).toBe(0o600);
  });
});

async function readEntries(file: string) {
  const ledger = new SqliteErasureLedger(file, { create: false });
  try {
    return await ledger.auditEntries();
  } finally {
    await ledger.close();
  }
}

describe('a tool that reads the ledger (forReading, for the audit CLI)', () => {
  it('refuses a missing or 0-byte ledger even without a head record, checks the record, and writes neither', async () => {
    const dir = folder('reading');
    const file = join(dir, 'ledger.db');
    const headFile = join(dir, 'head.json');
    expect(() => SqliteErasureLedger.open(file, headFile, { forReading: true })).toThrow(`PSEUDO_ERASURE_LEDGER_FILE: there is no erasure ledger at ${file}`);
    writeFileSync(file, '');
    expect(() => SqliteErasureLedger.open(file, headFile, { forReading: true })).toThrow('there is no erasure ledger');
    expect(statSync(file).size).toBe(0);
    expect(existsSync(headFile)).toBe(false);

    rmSync(file);
    const { ledger } = SqliteErasureLedger.open(file, headFile);
    await ledger.create(filed('er-1'), entry('er-1'));
    await ledger.close();
    const recorded = readFileSync(headFile, 'utf8');
    const reader = SqliteErasureLedger.open(file, headFile, { forReading: true }).ledger;
    expect((await reader.auditEntries()).length).toBe(1);
    await reader.close();
    expect(readFileSync(headFile, 'utf8')).toBe(recorded);
    writeFileSync(file, '');
    expect(() => SqliteErasureLedger.open(file, headFile, { forReading: true })).toThrow('is empty (0 bytes)');
  });
});

describe('a path that cannot hold the ledger', () => {
  it('is a ConfigError naming PSEUDO_ERASURE_LEDGER_FILE: a folder, or a file where a folder must be', () => {
    const dir = folder('paths');
    writeFileSync(join(dir, 'regular'), 'x');
    for (const [path, says] of [
      [join(dir, 'regular', 'ledger.db'), 'a part of its folder path is a file'],
      [join(dir, 'regular', 'deeper', 'ledger.db'), 'a part of its folder path is a file'],
      [dir, 'it is a folder'],
    ] as const) {
      let thrown: unknown;
      try {
        new SqliteErasureLedger(path);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(ConfigError);
      expect((thrown as ConfigError).key).toBe('PSEUDO_ERASURE_LEDGER_FILE');
      expect((thrown as ConfigError).message).toContain(says);
      expect(() => SqliteErasureLedger.open(path, join(dir, 'head.json'))).toThrow(ConfigError);
    }
  });

  it('refuses npm start with exit 2 naming the setting', async () => {
    const dir = folder('path-start');
    writeFileSync(join(dir, 'regular'), 'x');
    const refused = await startRefused({ PSEUDO_DATA_DIR: join(dir, 'data'), PSEUDO_ERASURE_REGISTRY_FILE: registryFile(dir), PSEUDO_ERASURE_LEDGER_FILE: join(dir, 'regular', 'ledger.db') });
    expect(refused.code).toBe(2);
    expect(refused.output).toContain('cannot start: PSEUDO_ERASURE_LEDGER_FILE:');
  });
});

/** Runs test/fixtures/ledger/holder.ts; resolves once it printed `lines` lines. */
function holder(mode: 'hold' | 'file', file: string, lines: number) {
  const child = spawn('node', ['--import', 'tsx', 'test/fixtures/ledger/holder.ts', mode, file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => { resolve(); }));
  const ready = new Promise<string[]>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const done = output.split('\n').slice(0, -1);
      if (done.length >= lines) resolve(done);
    });
    child.once('exit', (code) => { reject(new Error(`holder exited (${code}) early: ${output}`)); });
  });
  const kill = async (): Promise<string[]> => {
    child.kill('SIGKILL');
    await exited;
    return output.split('\n').slice(0, -1);
  };
  return { ready, kill };
}

describe('a process killed inside the ledger', () => {
  it('leaves a lock the next open clears at once: what it had not committed is rolled back', async () => {
    const dir = folder('killed-hold');
    const file = join(dir, 'ledger.db');
    const headFile = join(dir, 'head.json');
    const { ledger } = SqliteErasureLedger.open(file, headFile);
    await ledger.create(filed('er-1'), entry('er-1'));
    await ledger.close();

    const held = holder('hold', file, 1);
    await held.ready;
    await held.kill();
    expect(existsSync(`${file}.lock`)).toBe(true);
    expect(existsSync(`${file}.owner`)).toBe(true);

    const reopened = SqliteErasureLedger.open(file, headFile).ledger;
    const entries = await reopened.auditEntries();
    expect(entries.map((e) => e.requestId)).toEqual(['er-1']);
    await reopened.create(filed('er-2'), entry('er-2'));
    expect(verifyAuditChain(await reopened.auditEntries())).toMatchObject({ valid: true });
    await reopened.close();
    expect(existsSync(`${file}.lock`)).toBe(false);
    expect(existsSync(`${file}.owner`)).toBe(false);
  });

  it('keeps every filing it acknowledged before the kill, and the chain holds', async () => {
    const dir = folder('killed-filing');
    const file = join(dir, 'ledger.db');
    const filing = holder('file', file, 30);
    await filing.ready;
    const acknowledged = await filing.kill();
    const { ledger } = SqliteErasureLedger.open(file, join(dir, 'head.json'));
    const ids = new Set((await ledger.list()).map((request) => request.id));
    for (const id of acknowledged) expect(ids.has(id)).toBe(true);
    expect(verifyAuditChain(await ledger.auditEntries())).toMatchObject({ valid: true });
    await ledger.close();
  });

  it('waits for a live holder instead of breaking its lock, then says another process holds it', async () => {
    const dir = folder('live-hold');
    const file = join(dir, 'ledger.db');
    await new SqliteErasureLedger(file).close();
    const held = holder('hold', file, 1);
    await held.ready;
    try {
      let thrown: unknown;
      try {
        new SqliteErasureLedger(file);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(LedgerError);
      expect((thrown as LedgerError).message).toContain('another running process holds it');
      expect(existsSync(`${file}.lock`)).toBe(true);
    } finally {
      await held.kill();
    }
  });
});

/**
 * A real full disk: a 256 KiB tmpfs mounted under the test folder (this needs root; tests run as root here and in
 * the CI container). Without root, the same failure comes from a folder the service may not write (a write the
 * file system refuses): root ignores permission bits, which is why the tmpfs is the first choice.
 */
function smallDisk(dir: string): { fill: () => void; free: () => void; release: () => void } {
  const mount = join(dir, 'disk');
  mkdirSync(mount);
  const mounted = spawnSyncStatus('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mount]) === 0;
  const filler = join(mount, 'filler');
  if (mounted) {
    return {
      fill: () => {
        try {
          for (let i = 0; ; i++) writeFileSync(`${filler}.${i}`, Buffer.alloc(16 * 1024));
        } catch {
          // ENOSPC: the disk is full
        }
      },
      free: () => {
        for (let i = 0; existsSync(`${filler}.${i}`); i++) rmSync(`${filler}.${i}`);
      },
      release: () => void spawnSyncStatus('umount', [mount]),
    };
  }
  return {
    fill: () => {
      chmodSync(mount, 0o500);
    },
    free: () => {
      chmodSync(mount, 0o700);
    },
    release: () => undefined,
  };
}

function spawnSyncStatus(command: string, args: string[]): number | null {
  return spawnSync(command, args, { stdio: 'ignore' }).status;
}

describe('a full disk under the ledger', () => {
  it('answers 503 ledger-unavailable with the cause logged, and once space returns every acknowledged filing is there', async () => {
    const dir = folder('full');
    const disk = smallDisk(dir);
    try {
      const dataDir = join(dir, 'data');
      const config = testConfig(dataDir, { PSEUDO_ERASURE_REGISTRY_FILE: registryFile(dir), PSEUDO_ERASURE_LEDGER_FILE: join(dir, 'disk', 'ledger.db') });
      const service = await start(config);
      const key = await keys(config);
      const fileErasure = (reference: string) =>
        call(service.running.url, 'POST', '/v1/erasure-requests', { apiKey: key.officer, body: { reference, reason: 'gdpr-art17-1a', subjects: [{ context: 'email', value: `${reference}.${JANE}` }] } });
      try {
        const acknowledged: string[] = [];
        const before = await fileErasure('GDPR-before');
        expect(before.status).toBe(202);
        acknowledged.push((before.json as { id: string }).id);

        disk.fill();
        const refused = await fileErasure('GDPR-during');
        expect(refused.status).toBe(503);
        expect(refused.json).toMatchObject({ type: 'urn:pseudonymization:problem:ledger-unavailable', status: 503 });
        const logged = service.logs().split('\n').find((line) => line.includes('"request failed"')) ?? '';
        expect(logged).toContain('"errorType":"LedgerError"');
        expect(logged).toMatch(/SQLITE_[A-Z]+/);
        expect(service.logs()).not.toContain(JANE);

        disk.free();
        for (const reference of ['GDPR-during', 'GDPR-after']) {
          const answer = await fileErasure(reference);
          expect(answer.status).toBe(202);
          acknowledged.push((answer.json as { id: string }).id);
        }
        const { ledger } = SqliteErasureLedger.open(config.erasure.ledgerFile, config.erasure.ledgerHeadFile);
        expect((await ledger.list()).map((request) => request.id).sort()).toEqual(acknowledged.sort());
        expect(verifyAuditChain(await ledger.auditEntries())).toMatchObject({ valid: true });
        await ledger.close();
      } finally {
        await service.running.close();
      }
    } finally {
      disk.release();
    }
  });
});
