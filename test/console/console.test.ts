/**
 * The compliance officers' console in a real browser: Debian's Chromium driven by playwright-core, against the real
 * service over HTTP (serving the console built into dist/console by the test set-up) and the real slapd for sign-in.
 *
 * An officer signs in, files by form and by CSV, watches the request move, opens and prints its certificate and
 * verifies the audit chain; a steward sees no filing; an expired session returns to sign-in. Every page passes
 * axe-core with no violation, breaks no Content-Security-Policy rule, asks no other origin for anything, and no
 * subject value appears in any URL the browser visited or requested. Screenshots go to test-output/console/.
 *
 * The erasure itself is not run here: no Spark job deletes rows. The request is moved to running and then to
 * verified through the ledger's own transitions (as the erasure worker does), with the contract's golden
 * certificate, so the page follows a real ledger through polling. The real flow, with local Spark erasing a real table,
 * is test/console/consoleErasure.test.ts.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ErasureCertificate } from '../../api/contracts/contracts.ts';
import { deadlineOf } from '../../api/erasure/requests.ts';
import { writeTestRegistry } from '../support/catalog.ts';
import { startTestService, type TestService } from '../support/service.ts';
import { PEOPLE, startSlapd, type TestDirectory } from '../support/slapd.ts';

const SCREENSHOTS = 'test-output/console';
const AXE_SOURCE = readFileSync('node_modules/axe-core/axe.min.js', 'utf8');
const JANE = 'sentinel.console.jane@example.com';
const CSV_SUBJECTS = ['sentinel.console.csv1@example.com', 'sentinel.console.csv2@example.com'];
const SENTINELS = ['sentinel', encodeURIComponent(JANE), ...CSV_SUBJECTS.map((s) => encodeURIComponent(s))];

let directory: TestDirectory;
let service: TestService;
let browser: Browser;
/** Every URL a page of these tests showed or requested, and everything the browser said about CSP. */
const visited: string[] = [];
const requested: string[] = [];
const cspViolations: string[] = [];
/** Jane's pseudonym, which names her as much as her address does: kept out of URLs too. */
let janePseudonym = '';

interface AxeViolation {
  id: string;
  help: string;
  targets: string[];
}

async function axeViolations(page: Page): Promise<AxeViolation[]> {
  // Evaluated through the DevTools protocol: the page's own CSP (no inline script) is left on.
  await page.evaluate(AXE_SOURCE);
  return page.evaluate<AxeViolation[]>(
    "axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] } }).then((r) => r.violations.map((v) => ({ id: v.id, help: v.help, targets: v.nodes.map((n) => String(n.target)) })))",
  );
}

/** Checks the page with axe-core and saves its screenshot. */
async function checkPage(page: Page, name: string): Promise<void> {
  expect(await axeViolations(page), `axe on ${name}`).toEqual([]);
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

async function openConsole(options: { clock?: boolean } = {}): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 }, acceptDownloads: true });
  const page = await context.newPage();
  if (options.clock) await page.clock.install();
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) visited.push(frame.url());
  });
  page.on('request', (request) => requested.push(request.url()));
  page.on('console', (message) => {
    if (/Content Security Policy/i.test(message.text())) cspViolations.push(message.text());
  });
  await page.goto(`${service.url}/console/`);
  return { context, page };
}

async function signIn(page: Page, person: { username: string; password: string }): Promise<void> {
  await page.getByLabel('User name').fill(person.username);
  await page.getByLabel('Password').fill(person.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText(`Signed in as ${person.username}`).waitFor();
}

function registryFile(): string {
  return writeTestRegistry([
    { namespace: 'crm', name: 'customers', columns: { id: 'long', email: 'string' }, contexts: { email: 'email' } },
    { namespace: 'fleet', name: 'vehicles', columns: { vin: 'string', km: 'long' }, contexts: { vin: 'vin' } },
  ]);
}

beforeAll(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  directory = await startSlapd();
  service = await startTestService({ ...directory.env, PSEUDO_LOGIN_MAX_FAILURES: '1000', PSEUDO_ERASURE_REGISTRY_FILE: registryFile() });
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
});

afterAll(async () => {
  await browser.close();
  await service.close();
  await directory.stop();
});

describe('the console is served with headers that keep it to its own origin', () => {
  it('answers /console/ with a strict CSP, nosniff, no framing; /console redirects; unknown files are 404 problems', async () => {
    const page = await fetch(`${service.url}/console/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const csp = page.headers.get('content-security-policy') ?? '';
    for (const directive of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"]) expect(csp).toContain(directive);
    expect(csp).not.toMatch(/unsafe-(inline|eval)/);
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(await page.text()).not.toMatch(/<script>|<style>|style=|https?:\/\//);
    const script = await fetch(`${service.url}/console/console.js`);
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    const redirect = await fetch(`${service.url}/console`, { redirect: 'manual' });
    expect(redirect.status).toBe(308);
    // Relative: it keeps the prefix the API is reached under (an API Gateway stage).
    expect(redirect.headers.get('location')).toBe('console/');
    for (const path of ['/console/nope.js', '/console/../api/server.ts', '/console/%2e%2e/package.json']) {
      const missing = await fetch(`${service.url}${path}`);
      expect(missing.status).toBe(404);
      expect(missing.headers.get('content-type')).toContain('application/problem+json');
    }
    expect((await fetch(`${service.url}/console/`, { method: 'POST' })).status).toBe(405);
  });

  it('the API answers the console reads are no-store', async () => {
    const login = await service.call('POST', '/v1/login', { body: PEOPLE.officer });
    const token = (login.json as { token: string }).token;
    for (const path of ['/v1/erasure-requests', '/v1/erasure-options', '/v1/erasure-lifts']) {
      const answer = await service.call('GET', path, { headers: { authorization: `Bearer ${token}` } });
      expect(answer.status).toBe(200);
      expect(answer.headers.get('cache-control')).toBe('no-store');
    }
    expect(login.headers.get('cache-control')).toBe('no-store');
  });
});

describe('an officer files, follows and proves erasures', () => {
  let context: BrowserContext;
  let page: Page;
  let formRequestId = '';

  beforeAll(async () => {
    ({ context, page } = await openConsole());
  });
  afterAll(async () => context.close());

  it('signs in with the directory identity and lands on the request list', async () => {
    await page.getByRole('heading', { name: 'Erasure console' }).waitFor();
    await checkPage(page, 'sign-in');
    await page.getByLabel('User name').fill(PEOPLE.officer.username);
    await page.getByLabel('Password').fill('not-the-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('the user name or password is not correct').waitFor();
    await signIn(page, PEOPLE.officer);
    await page.getByRole('heading', { name: 'Erasure requests' }).waitFor();
    expect(page.url()).toBe(`${service.url}/console/#/requests`);
    // The token is in memory only.
    expect(await page.evaluate('JSON.stringify([localStorage.length, sessionStorage.length, document.cookie])')).toBe('[0,0,""]');
  });

  it('files a request by form: validation names the field, the filing goes, the request page shows it received', async () => {
    // Taken before filing (pseudonymize withholds a filed subject's): the suppressions test lifts Jane by it.
    janePseudonym = ((await service.call('POST', '/v1/pseudonymize', { apiKey: service.keys.pseudonymize, body: { context: 'email', values: [JANE] } })).json as { pseudonyms: string[] }).pseudonyms[0]!;
    await page.getByRole('link', { name: 'File a request' }).click();
    await page.getByRole('heading', { name: 'File an erasure request' }).waitFor();
    await page.getByLabel('Legal ground').selectOption('gdpr-art17-1b');
    await expect.poll(() => page.locator('#reason-meaning').textContent()).toContain('withdrew the consent');
    await page.getByRole('button', { name: 'File the request' }).click();
    const errors = page.locator('#filing-errors');
    await errors.waitFor();
    expect(await errors.textContent()).toContain('Reference: a ticket reference');
    expect(await errors.textContent()).toContain('Subject 1, value: must not be empty');
    await page.getByLabel('Reference (your ticket)').fill('CONSOLE-FORM-1');
    await page.getByLabel('Identifier').fill(JANE);
    await checkPage(page, 'file-form');
    await page.getByRole('button', { name: 'File the request' }).click();
    await page.getByRole('heading', { name: 'Request CONSOLE-FORM-1' }).waitFor();
    formRequestId = /#\/requests\/(er-[0-9a-f-]{36})$/.exec(page.url())?.[1] ?? '';
    expect(formRequestId).not.toBe('');
    expect(await page.locator('#request-status').textContent()).toBe('received');
    await checkPage(page, 'request-received');
  });

  it('files a request from a CSV file: a preview with per-row errors first, nothing sent until the file is right', async () => {
    await page.getByRole('link', { name: 'File a request' }).click();
    await page.getByLabel('Reference (your ticket)').fill('CONSOLE-CSV-1');
    await page.getByLabel('From a CSV file').check();
    const bad = `context,value\nemail,${CSV_SUBJECTS[0]!}\nnope,${CSV_SUBJECTS[1]!}\nemail,\n`;
    await page.getByLabel('CSV file', { exact: true }).setInputFiles({ name: 'subjects.csv', mimeType: 'text/csv', buffer: Buffer.from(bad) });
    await page.getByText('3 row(s): 1 ready, 2 with errors').waitFor();
    const preview = await page.locator('table.preview').textContent();
    expect(preview).toContain('context: not one of the contexts of registered tables');
    expect(preview).toContain('value or pseudonym: both empty');
    await checkPage(page, 'file-csv-errors');
    const before = (await service.call('GET', '/v1/erasure-requests', { headers: { authorization: `Bearer ${await officerToken()}` } })).json as { requests: unknown[] };
    await page.getByRole('button', { name: 'File the request' }).click();
    await page.locator('#filing-errors').waitFor();
    const after = (await service.call('GET', '/v1/erasure-requests', { headers: { authorization: `Bearer ${await officerToken()}` } })).json as { requests: unknown[] };
    expect(after.requests.length).toBe(before.requests.length);

    const good = `context,value\r\nemail,${CSV_SUBJECTS[0]!}\r\n"email","${CSV_SUBJECTS[1]!}"\r\n`;
    await page.getByLabel('CSV file', { exact: true }).setInputFiles({ name: 'subjects.csv', mimeType: 'text/csv', buffer: Buffer.from(good) });
    await page.getByText('2 row(s): 2 ready.').waitFor();
    await checkPage(page, 'file-csv-preview');
    await page.getByRole('button', { name: 'File the request' }).click();
    await page.getByRole('heading', { name: 'Request CONSOLE-CSV-1' }).waitFor();
    expect(await page.getByText('2 in email').count()).toBe(1);
  });

  it('lists requests with deadlines, filters by status and searches by reference', async () => {
    await page.getByRole('link', { name: 'Requests', exact: true }).click();
    await page.getByRole('link', { name: 'CONSOLE-FORM-1' }).waitFor();
    expect(await page.locator('table.requests tbody tr').count()).toBe(2);
    await page.getByLabel('Reference contains').fill('csv');
    await expect.poll(() => page.locator('table.requests tbody tr').count()).toBe(1);
    await page.getByLabel('Reference contains').fill('');
    await page.getByLabel('Status').selectOption('verified');
    await page.getByText('No request matches.').waitFor();
    await page.getByLabel('Status').selectOption('');
    await page.getByRole('link', { name: 'CONSOLE-CSV-1' }).waitFor();
    // Filed today: due in a month, not overdue.
    expect(await page.locator('tr.overdue').count()).toBe(0);
    await checkPage(page, 'requests');
  });

  it('follows a request live to verified, and shows its certificate as a printable page and as JSON', async () => {
    await page.getByRole('link', { name: 'CONSOLE-FORM-1' }).click();
    await page.getByRole('heading', { name: 'Request CONSOLE-FORM-1' }).waitFor();
    const ledger = service.running.service.erasure!.ledger;
    const runId = 'run-00000000-0000-4000-8000-000000000001';
    await ledger.transition(formRequestId, { status: 'running', runId, attempts: 1, tables: [{ table: 'local.crm.customers', status: 'running' }] }, { actor: 'service', action: 'erasure.started', requestId: formRequestId, outcome: 'running' });
    await expect.poll(() => page.locator('#request-status').textContent(), { timeout: 20_000 }).toBe('running');
    await checkPage(page, 'request-running');
    const golden = JSON.parse(readFileSync('contracts/golden/erasure-certificate/valid-verified.json', 'utf8')) as ErasureCertificate;
    const certificate = { ...golden, runId, requestIds: [formRequestId] };
    await ledger.transition(formRequestId, { status: 'verified', tables: [{ table: 'local.crm.customers', status: 'verified' }], certificate }, { actor: 'service', action: 'erasure.verified', requestId: formRequestId, outcome: 'verified' });
    await expect.poll(() => page.locator('#request-status').textContent(), { timeout: 20_000 }).toBe('verified');

    await page.getByRole('link', { name: 'Certificate' }).click();
    await page.getByRole('heading', { name: 'Erasure certificate' }).waitFor();
    const text = await page.locator('article.certificate').textContent();
    for (const shown of [golden.tables[0]!.snapshotBefore!, golden.tables[0]!.snapshotAfter!, golden.tables[0]!.verification.method, 'Bytes scanned', 'Files scanned']) expect(text).toContain(shown);
    await checkPage(page, 'certificate');
    await page.emulateMedia({ media: 'print' });
    expect(await page.locator('header.bar').isVisible()).toBe(false);
    expect(await page.getByRole('button', { name: 'Print' }).isVisible()).toBe(false);
    await page.screenshot({ path: join(SCREENSHOTS, 'certificate-print.png'), fullPage: true });
    const pdf = await page.pdf({ format: 'A4' });
    expect(pdf.subarray(0, 5).toString()).toBe('%PDF-');
    await page.emulateMedia({ media: 'screen' });
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download JSON' }).click()]);
    const saved = await download.path();
    expect(JSON.parse(readFileSync(saved, 'utf8'))).toEqual(certificate);
  });

  it("shows the request's audit trail and verifies the chain, giving the head hash", async () => {
    await page.getByRole('link', { name: 'Back to the request' }).click();
    await page.getByRole('link', { name: 'Audit trail' }).click();
    await page.getByRole('heading', { name: 'Audit trail of CONSOLE-FORM-1' }).waitFor();
    const actions = await page.locator('table.audit tbody tr td:nth-child(4)').allTextContents();
    expect(actions).toEqual(['erasure.filed', 'erasure.started', 'erasure.verified']);
    await page.getByRole('button', { name: 'Verify chain' }).click();
    await page.locator('#chain-result').waitFor();
    expect(await page.locator('#chain-result').textContent()).toContain('The chain holds');
    const entries = await service.running.service.erasure!.ledger.auditEntries();
    expect(await page.locator('#head-hash').textContent()).toBe(entries.at(-1)!.hash);
    await checkPage(page, 'audit');
  });

  it('shows the dashboard and the suppressions page', async () => {
    await page.getByRole('link', { name: 'Dashboard' }).click();
    await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
    expect(await page.locator('svg[role="img"]').count()).toBe(3);
    // The list is read again on arrival: the chart shows the verified request once it is in.
    await expect.poll(() => page.locator('svg[aria-label^="Time from filing to verified"]').getAttribute('aria-label')).toContain('< 1 hour: 1');
    await checkPage(page, 'dashboard');
    await page.getByRole('link', { name: 'Suppressions' }).click();
    await page.getByRole('heading', { name: 'Lift a suppression' }).waitFor();
    await page.getByText('No lifts.').waitFor();
    // Jane's request is verified, so her suppression can be lifted (she consented again), by pseudonym.
    await page.getByLabel('Reference (your ticket)').fill('CONSENT-CONSOLE-1');
    await page.getByLabel('Reason').selectOption('consent');
    await page.getByLabel('Pseudonym', { exact: true }).fill(janePseudonym);
    await page.getByRole('button', { name: 'Lift' }).click();
    await page.getByRole('cell', { name: 'CONSENT-CONSOLE-1' }).waitFor();
    expect(await page.getByRole('cell', { name: '1 in email' }).count()).toBe(1);
    const again = (await service.call('POST', '/v1/pseudonymize', { apiKey: service.keys.pseudonymize, body: { context: 'email', values: [JANE] } })).json as { pseudonyms: (string | null)[] };
    expect(again.pseudonyms[0]).toBe(janePseudonym);
    await checkPage(page, 'suppressions');
  });
});

describe('requests that went wrong or late', () => {
  it("shows a failed request's attempts and the reason it failed", async () => {
    const ledger = service.running.service.erasure!.ledger;
    const csvRequest = (await ledger.list()).find((r) => r.reference === 'CONSOLE-CSV-1')!;
    const runId = 'run-00000000-0000-4000-8000-000000000002';
    await ledger.transition(csvRequest.id, { status: 'running', runId, attempts: 1, tables: [{ table: 'local.crm.customers', status: 'running' }] }, { actor: 'service', action: 'erasure.started', requestId: csvRequest.id, outcome: 'running' });
    const reason = 'the job exited with status 1 and wrote no certificate';
    await ledger.transition(csvRequest.id, { status: 'failed', tables: [{ table: 'local.crm.customers', status: 'failed', detail: 'verification found 1 file with matches' }], error: reason }, { actor: 'service', action: 'erasure.failed', requestId: csvRequest.id, outcome: 'failed' });
    const { context, page } = await openConsole();
    await signIn(page, PEOPLE.officer);
    await page.getByRole('link', { name: 'CONSOLE-CSV-1' }).click();
    await page.getByRole('heading', { name: 'Request CONSOLE-CSV-1' }).waitFor();
    expect(await page.locator('#request-status').textContent()).toBe('failed');
    const facts = await page.locator('dl.facts').textContent();
    expect(facts).toContain(`Why it failed${reason}`);
    expect(facts).toContain('Attempts1');
    expect(await page.getByRole('cell', { name: 'verification found 1 file with matches' }).count()).toBe(1);
    await checkPage(page, 'request-failed');
    await context.close();
  });

  it('marks requests past their one-month deadline as overdue, unless verified', async () => {
    const { context, page } = await openConsole({ clock: true });
    await signIn(page, PEOPLE.officer);
    await page.getByRole('link', { name: 'CONSOLE-CSV-1' }).waitFor();
    expect(await page.locator('tr.overdue').count()).toBe(0);
    // The browser's clock 40 days on (timers do not fire): the session still holds for the service.
    await page.clock.setSystemTime(Date.now() + 40 * 86_400_000);
    await page.getByRole('link', { name: 'Dashboard' }).click();
    await page.getByText('2 requests, 0 open, 1 overdue.').waitFor();
    await page.getByRole('link', { name: 'Requests', exact: true }).click();
    await page.getByRole('link', { name: 'CONSOLE-CSV-1' }).waitFor();
    const overdue = page.locator('tr.overdue');
    expect(await overdue.count()).toBe(1);
    expect(await overdue.textContent()).toContain('CONSOLE-CSV-1');
    expect(await overdue.textContent()).toContain('Overdue');
    await checkPage(page, 'requests-overdue');
    await context.close();
  });

  it('extends a deadline by two months with a reason: the page and the list show the new one, overdue only past it', async () => {
    const token = await officerToken();
    const listed = (await service.call('GET', '/v1/erasure-requests', { headers: { authorization: `Bearer ${token}` } })).json as { requests: { reference: string; createdAt: string }[] };
    const filedAt = listed.requests.find((r) => r.reference === 'CONSOLE-CSV-1')!.createdAt;
    const extended = deadlineOf(filedAt, { months: 2 }).slice(0, 10);
    const { context, page } = await openConsole({ clock: true });
    await signIn(page, PEOPLE.officer);
    await page.getByRole('link', { name: 'CONSOLE-CSV-1' }).click();
    await page.getByRole('heading', { name: 'Request CONSOLE-CSV-1' }).waitFor();
    expect(await page.locator('#request-deadline').textContent()).toBe(deadlineOf(filedAt).slice(0, 10));
    // An empty reason is refused in the page, naming the field; nothing is sent.
    await page.getByRole('button', { name: 'Extend the deadline' }).click();
    await page.locator('#extension-errors').getByText('Reason:').waitFor();
    await page.getByLabel('Further months').selectOption('2');
    await page.getByLabel('Reason', { exact: true }).fill('The data subject asked for a copy of their data before the erasure');
    await page.getByRole('button', { name: 'Extend the deadline' }).click();
    await page.locator('#request-extension').waitFor();
    expect(await page.locator('#request-deadline').textContent()).toBe(extended);
    expect(await page.locator('#request-extension').textContent()).toContain('2 months');
    expect(await page.locator('#request-extension').textContent()).toContain('The data subject asked for a copy of their data before the erasure');
    // Once per request: the form is gone.
    expect(await page.getByRole('button', { name: 'Extend the deadline' }).count()).toBe(0);
    await checkPage(page, 'request-extended');
    // 40 days on it is no longer overdue; past the extended deadline it is again.
    await page.clock.setSystemTime(Date.now() + 40 * 86_400_000);
    await page.getByRole('link', { name: 'Requests', exact: true }).click();
    const row = page.getByRole('row').filter({ hasText: 'CONSOLE-CSV-1' });
    await row.waitFor();
    expect(await row.textContent()).toContain(extended);
    expect(await page.locator('tr.overdue').count()).toBe(0);
    await page.clock.setSystemTime(Date.parse(extended) + 2 * 86_400_000);
    await page.getByRole('link', { name: 'Dashboard' }).click();
    await page.getByText('2 requests, 0 open, 1 overdue.').waitFor();
    await context.close();
  });
});

describe('roles and sessions', () => {
  it('a data steward signs in and sees no filing', async () => {
    const { context, page } = await openConsole();
    await signIn(page, PEOPLE.steward);
    await page.getByRole('heading', { name: 'Your role' }).waitFor();
    expect(await page.getByRole('link', { name: 'File a request' }).count()).toBe(0);
    expect(await page.getByText('Your directory groups give you the reidentify role').count()).toBe(1);
    await page.evaluate("window.location.hash = '#/file'");
    await page.getByRole('heading', { name: 'Your role' }).waitFor();
    expect(await page.getByRole('button', { name: 'File the request' }).count()).toBe(0);
    await checkPage(page, 'steward');
    await context.close();
  });

  it('a session that expires returns to sign-in with a message', async () => {
    const { context, page } = await openConsole({ clock: true });
    await signIn(page, PEOPLE.officer);
    await page.getByRole('heading', { name: 'Erasure requests' }).waitFor();
    // The default session lasts 15 minutes (PSEUDO_SESSION_TTL_SECONDS).
    await page.clock.fastForward('16:00');
    await page.getByText('Your session ended at').waitFor();
    expect(await page.getByRole('button', { name: 'Sign in' }).count()).toBe(1);
    expect(await page.getByText('Signed in as').count()).toBe(0);
    await checkPage(page, 'session-expired');
    await context.close();
  });
});

describe('across every page the tests opened', () => {
  it('no subject value reached a URL, no other origin was asked for anything, and no CSP rule was broken', () => {
    expect(visited.length).toBeGreaterThan(3);
    expect(janePseudonym).not.toBe('');
    for (const url of [...visited, ...requested]) {
      for (const sentinel of [...SENTINELS, janePseudonym, encodeURIComponent(janePseudonym)]) expect(url.includes(sentinel), `a URL contains a subject value: ${url}`).toBe(false);
      expect(url.startsWith(`${service.url}/`) || url.startsWith('blob:') || url.startsWith('data:') || url === 'about:blank', `another origin: ${url}`).toBe(true);
    }
    expect(cspViolations).toEqual([]);
  });
});

async function officerToken(): Promise<string> {
  return ((await service.call('POST', '/v1/login', { body: PEOPLE.officer })).json as { token: string }).token;
}
