/**
 * The console's whole erasure flow in a real browser, with nothing stood in for: Debian's Chromium (playwright-core)
 * against the real service over HTTP with its erasure worker and the local Spark runner, the real slapd for sign-in,
 * and a real Iceberg table (local JDBC catalog) holding pseudonyms the service itself made.
 *
 * An officer signs in, files a request by the form for one subject in the table, watches the request page until the
 * Spark job has erased and verified it, opens the certificate (naming the table, verification passed), prints it to
 * PDF and verifies the audit chain. One test: the Spark job takes minutes on a busy machine.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiKeyRegistry } from '../../api/auth/apiKeys.ts';
import { apiKeyDocumentsFor } from '../../api/auth/fromConfig.ts';
import { bootstrapLocal } from '../../api/bootstrap.ts';
import { createLogger } from '../../api/observability/logger.ts';
import { startServer, type RunningServer } from '../../api/server.ts';
import { call, testConfig } from '../support/service.ts';
import { PEOPLE, startSlapd, type TestDirectory } from '../support/slapd.ts';

const AXE_SOURCE = readFileSync('node_modules/axe-core/axe.min.js', 'utf8');
const PYTHON = resolve('.venv/bin/python');
const TABLE = 'local.crm.console_people';
const EMAILS = Array.from({ length: 20 }, (_, i) => `sentinel.console.person${String(i).padStart(2, '0')}@example.com`);
const SUBJECT = EMAILS[7]!;

/** Creates the Iceberg table with Spark: rows in two appends, each email's pseudonym in several rows. */
const CREATE_TABLE = `
import json, sys
from spark_udfs.jobs.session import CatalogConfig, build_session
spec = json.load(sys.stdin)
spark = build_session(CatalogConfig(name="local", type="jdbc", uri=spec["uri"], warehouse=spec["warehouse"]), app_name="console-erasure-test", master="local[2]")
spark.sql(f"CREATE TABLE {spec['table']} (id bigint, email string) USING iceberg TBLPROPERTIES ('format-version'='2')")
for batch in spec["batches"]:
    spark.createDataFrame([tuple(row) for row in batch], "id bigint, email string").writeTo(spec["table"]).append()
spark.stop()
`;

/** Small-machine Spark settings (as the Python suites set them): they change nothing the job writes or decides. */
const SPARK_ENV = {
  SPARK_UDFS_JARS: resolve('.cache/jars'),
  PYSPARK_SUBMIT_ARGS: "--conf spark.sql.shuffle.partitions=2 --conf spark.default.parallelism=2 --conf spark.ui.enabled=false --conf 'spark.driver.extraJavaOptions=-XX:+UseSerialGC -XX:TieredStopAtLevel=1' pyspark-shell",
};

let directory: TestDirectory | undefined;
let running: RunningServer | undefined;
let browser: Browser | undefined;
const folders: string[] = [];

interface AxeViolation {
  id: string;
  targets: string[];
}

async function axeViolations(page: Page): Promise<AxeViolation[]> {
  await page.evaluate(AXE_SOURCE);
  return page.evaluate<AxeViolation[]>(
    "axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] } }).then((r) => r.violations.map((v) => ({ id: v.id, targets: v.nodes.map((n) => String(n.target)) })))",
  );
}

/** Pseudonyms of the table's emails, from a service on the same data folder (the same keyring) without erasure. */
async function pseudonymsFrom(dataDir: string): Promise<string[]> {
  const config = testConfig(dataDir);
  const logger = createLogger('warn', { write: () => undefined });
  await bootstrapLocal(config, logger);
  const key = (await new ApiKeyRegistry(apiKeyDocumentsFor(config.apiKeys)).create('console-erasure-spark', ['pseudonymize'], undefined)).key;
  const plain = await startServer(config, { logger });
  try {
    const answer = await call(plain.url, 'POST', '/v1/pseudonymize', { apiKey: key, body: { context: 'email', values: EMAILS } });
    expect(answer.status).toBe(200);
    return (answer.json as { pseudonyms: string[] }).pseudonyms;
  } finally {
    await plain.close();
  }
}

function createTable(folder: string, pseudonyms: readonly string[]): string {
  const catalog = { uri: join(folder, 'catalog.db'), warehouse: join(folder, 'warehouse') };
  const batches = [0, 1].map((batch) => Array.from({ length: 30 }, (_, k) => [batch * 100 + k, pseudonyms[(batch * 7 + k) % pseudonyms.length]!]));
  const created = spawnSync(PYTHON, ['-c', CREATE_TABLE], { input: JSON.stringify({ ...catalog, table: TABLE, batches }), env: { ...process.env, ...SPARK_ENV }, encoding: 'utf8', timeout: 300_000 });
  expect(created.status, created.stderr.slice(-2000)).toBe(0);
  const registry = join(folder, 'registry.json');
  writeFileSync(registry, JSON.stringify({ catalog: { type: 'jdbc', name: 'local', ...catalog }, tables: [{ name: TABLE, columns: { email: 'email' } }] }));
  return registry;
}

/** The Spark jobs the erasure worker started from this process, if any is left (a failed run): ended by their ids. */
function stopLeftoverJobs(): void {
  const listed = spawnSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], { encoding: 'utf8' });
  for (const line of listed.stdout.split('\n')) {
    const [pid, command] = line.trim().split(/\s+/);
    if (pid && command === PYTHON) spawnSync('kill', ['--', pid], { stdio: 'ignore' });
  }
}

beforeAll(async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'console-erasure-data-'));
  const tableFolder = mkdtempSync(join(tmpdir(), 'console-erasure-iceberg-'));
  folders.push(dataDir, tableFolder);
  const registry = createTable(tableFolder, await pseudonymsFrom(dataDir));
  directory = await startSlapd();
  Object.assign(process.env, SPARK_ENV);
  const config = testConfig(dataDir, {
    ...directory.env,
    PSEUDO_LOGIN_MAX_FAILURES: '1000',
    PSEUDO_ERASURE_REGISTRY_FILE: registry,
    PSEUDO_ERASURE_PYTHON: PYTHON,
    PSEUDO_ERASURE_POLL_SECONDS: '1',
    PSEUDO_ERASURE_ORPHAN_GRACE_SECONDS: '0',
  });
  running = await startServer(config, { logger: createLogger('warn', { write: () => undefined }), erasureWorker: true });
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
}, 400_000);

afterAll(async () => {
  await browser?.close();
  await running?.close();
  await directory?.stop();
  stopLeftoverJobs();
  for (const folder of folders) rmSync(folder, { recursive: true, force: true });
});

describe('an officer erases a subject from a real Iceberg table through the console', () => {
  it('files by form, follows the Spark job to verified, opens and prints the certificate, verifies the chain', async () => {
    const url = running!.url;
    const context = await browser!.newContext({ viewport: { width: 1200, height: 800 } });
    const page = await context.newPage();
    await page.goto(`${url}/console/`);
    await page.getByLabel('User name').fill(PEOPLE.officer.username);
    await page.getByLabel('Password').fill(PEOPLE.officer.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText(`Signed in as ${PEOPLE.officer.username}`).waitFor();

    await page.getByRole('link', { name: 'File a request' }).click();
    await page.getByRole('heading', { name: 'File an erasure request' }).waitFor();
    await page.getByLabel('Reference (your ticket)').fill('CONSOLE-SPARK-1');
    await page.getByLabel('Legal ground').selectOption('gdpr-art17-1b');
    await page.getByLabel('Identifier').fill(SUBJECT);
    await page.getByRole('button', { name: 'File the request' }).click();
    await page.getByRole('heading', { name: 'Request CONSOLE-SPARK-1' }).waitFor();
    expect(page.url()).not.toContain('sentinel');

    // The page polls the ledger; the worker runs the Spark job (minutes on a busy machine).
    const seen = new Set<string>();
    await expect
      .poll(
        async () => {
          const status = (await page.locator('#request-status').textContent()) ?? '';
          seen.add(status);
          return status;
        },
        { timeout: 480_000, interval: 2_000 },
      )
      .toBe('verified');
    expect(seen.has('running'), 'the page showed the job running on the way').toBe(true);

    await page.getByRole('link', { name: 'Certificate' }).click();
    await page.getByRole('heading', { name: 'Erasure certificate' }).waitFor();
    const article = page.locator('article.certificate');
    expect(await article.locator('h2').allTextContents()).toEqual([TABLE]);
    const result = await article.locator('dl.facts').textContent();
    expect(result).toContain('Resultverified');
    const rows = await page.locator('section.table-report tr').allTextContents();
    expect(rows).toContain('Verificationpassed');
    expect(rows).toContain('Files still matching0');
    expect(rows).toContainEqual(expect.stringMatching(/^Rows deleted[1-9]/));
    expect(await axeViolations(page), 'axe on the certificate').toEqual([]);
    await page.emulateMedia({ media: 'print' });
    const pdf = await page.pdf({ format: 'A4' });
    expect(pdf.subarray(0, 5).toString()).toBe('%PDF-');
    await page.emulateMedia({ media: 'screen' });

    await page.getByRole('link', { name: 'Back to the request' }).click();
    await page.getByRole('link', { name: 'Audit trail' }).click();
    await page.getByRole('heading', { name: 'Audit trail of CONSOLE-SPARK-1' }).waitFor();
    const actions = await page.locator('table.audit tbody tr td:nth-child(4)').allTextContents();
    expect(actions[0]).toBe('erasure.filed');
    expect(actions.at(-1)).toBe('erasure.verified');
    await page.getByRole('button', { name: 'Verify chain' }).click();
    await page.locator('#chain-result').waitFor();
    expect(await page.locator('#chain-result').textContent()).toContain('The chain holds');
    const entries = await running!.service.erasure!.ledger.auditEntries();
    expect(await page.locator('#head-hash').textContent()).toBe(entries.at(-1)!.hash);
    await context.close();
  }, 600_000);
});
