/// <reference lib="dom" />
/**
 * The compliance officers' console: one Lit element rendering into the page itself (no shadow root, so the one
 * stylesheet console.css applies and CSP needs no inline style). Views are chosen by the URL's fragment
 * (#/requests, #/requests/<id>, …), which carries request ids only: subject values live in this element's memory
 * while a filing is being written and are dropped once it is sent, and never reach a URL or any storage.
 *
 * The session token lives in the `Api` object held here, in memory only; a reload signs out. At its expiry (or at
 * the first 401), the session ends with a message and the sign-in form comes back.
 */
import { html, LitElement, nothing, type TemplateResult } from 'lit';
import { Api, ApiProblem, ERASURE_STATUSES, signIn, type AuditTrail, type ErasureOptions, type ErasureRequestView, type ErasureStatus, type LiftView, type Session, type SubjectReference } from './api.ts';
import { barChart, filingToVerified, openByAge, perWeek } from './charts.ts';
import { MAX_SUBJECTS, parseSubjectsCsv, type CsvResult } from './csv.ts';
import { formatBytes, formatDate, formatDateTime, isOverdue, LEGAL_GROUND_MEANINGS, LIFT_REASON_MEANINGS, meaningOf, requestDeadline, STATUS_MEANINGS } from './meaning.ts';

type View =
  | { readonly name: 'requests' }
  | { readonly name: 'file' }
  | { readonly name: 'request'; readonly id: string }
  | { readonly name: 'certificate'; readonly id: string }
  | { readonly name: 'audit'; readonly id: string }
  | { readonly name: 'dashboard' }
  | { readonly name: 'lifts' }
  | { readonly name: 'home' };

const REFERENCE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:/#-]{0,63}$/;
const REQUEST_ID_PATTERN = /^er-[0-9a-f-]{36}$/;
const POLL_MS = 2000;
const MAX_EXTENSION_REASON = 500;

/** One subject row of the form: what the officer typed, kept in memory until the filing is sent. */
interface SubjectRow {
  context: string;
  kind: 'value' | 'pseudonym';
  text: string;
  confirm: string;
}

function viewOfHash(hash: string): View {
  const parts = hash.replace(/^#\/?/, '').split('/');
  const [first, id, sub] = parts;
  if (first === 'requests' && id && REQUEST_ID_PATTERN.test(id)) {
    if (sub === 'certificate') return { name: 'certificate', id };
    if (sub === 'audit') return { name: 'audit', id };
    return { name: 'request', id };
  }
  if (first === 'file') return { name: 'file' };
  if (first === 'dashboard') return { name: 'dashboard' };
  if (first === 'lifts') return { name: 'lifts' };
  if (first === 'requests') return { name: 'requests' };
  return { name: 'home' };
}

function inputValue(event: Event): string {
  const target = event.target;
  return target instanceof HTMLInputElement || target instanceof HTMLSelectElement || target instanceof HTMLTextAreaElement ? target.value : '';
}

function problemText(error: unknown): string {
  return error instanceof ApiProblem ? error.detail : 'something went wrong in the console';
}

function emptyRow(context: string): SubjectRow {
  return { context, kind: 'value', text: '', confirm: '' };
}

export class ErasureConsole extends LitElement {
  // State, rendered by `render`; not private, so that `set` can take a typed patch of it.
  session: Session | undefined;
  api: Api | undefined;
  expiryTimer: number | undefined;
  pollTimer: number | undefined;
  view: View = { name: 'home' };
  /** Shown on the sign-in form: why the last session ended. */
  notice = '';
  busy = false;
  error = '';
  options: ErasureOptions | undefined;
  requests: readonly ErasureRequestView[] = [];
  statusFilter: ErasureStatus | '' = '';
  referenceSearch = '';
  current: ErasureRequestView | undefined;
  audit: AuditTrail | undefined;
  chainChecked = false;
  lifts: readonly LiftView[] = [];
  // The filing being written (memory only).
  reference = '';
  reason = '';
  rows: SubjectRow[] = [];
  subjectMode: 'form' | 'csv' = 'form';
  csv: CsvResult | undefined;
  fieldErrors: readonly string[] = [];
  liftReason = '';
  liftReference = '';
  liftRows: SubjectRow[] = [];
  // The deadline extension being written on a request's page (memory only).
  extensionMonths: 1 | 2 = 1;
  extensionReason = '';
  extensionErrors: readonly string[] = [];

  private readonly onHashChange = (): void => {
    void this.navigate();
  };

  // Light DOM: console.css styles the element's content, and CSP allows no inline or constructed styles to be needed.
  protected override createRenderRoot(): HTMLElement {
    return this;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    window.addEventListener('hashchange', this.onHashChange);
    this.requestUpdate();
  }

  override disconnectedCallback(): void {
    window.removeEventListener('hashchange', this.onHashChange);
    this.stopPolling();
    super.disconnectedCallback();
  }

  private set(patch: Partial<ErasureConsole>): void {
    Object.assign(this, patch);
    this.requestUpdate();
  }

  private get isOfficer(): boolean {
    return this.session?.roles.includes('privacy-officer') === true;
  }

  // ---- session ----

  private async submitSignIn(event: SubmitEvent): Promise<void> {
    event.preventDefault();
    const form = event.target as HTMLFormElement;
    const username = (form.elements.namedItem('username') as HTMLInputElement).value;
    const passwordField = form.elements.namedItem('password') as HTMLInputElement;
    if (username.trim() === '' || passwordField.value === '') {
      this.set({ error: 'User name and password: both are needed' });
      return;
    }
    this.set({ busy: true, error: '' });
    try {
      const session = await signIn(username.trim(), passwordField.value);
      passwordField.value = '';
      this.startSession(session);
    } catch (error) {
      this.set({ error: problemText(error) });
    } finally {
      this.set({ busy: false });
    }
  }

  private startSession(session: Session): void {
    this.session = session;
    this.api = new Api(session, () => {
      this.endSession('The service no longer accepts your session: sign in again.');
    });
    this.notice = '';
    window.clearTimeout(this.expiryTimer);
    // Timers run at most 2^31-1 ms; sessions last at most 12 hours, well inside.
    this.expiryTimer = window.setTimeout(() => {
      this.endSession(`Your session ended at ${session.expiresAt.toISOString().slice(11, 16)} UTC, as sessions do after a while: sign in again to continue.`);
    }, Math.max(0, session.expiresAt.getTime() - Date.now()));
    const start = this.isOfficer ? '#/requests' : '#/home';
    if (window.location.hash !== start && (!this.isOfficer || viewOfHash(window.location.hash).name === 'home')) window.location.hash = start;
    void this.navigate();
  }

  /** Forgets the token and everything read with it, and shows the sign-in form with `notice`. */
  private endSession(notice: string): void {
    if (!this.session) return;
    window.clearTimeout(this.expiryTimer);
    this.stopPolling();
    this.session = undefined;
    this.api = undefined;
    this.requests = [];
    this.current = undefined;
    this.audit = undefined;
    this.lifts = [];
    this.options = undefined;
    this.clearFiling();
    this.set({ notice, error: '' });
    void this.updateComplete.then(() => this.querySelector<HTMLElement>('#notice')?.focus());
  }

  private clearFiling(): void {
    this.reference = '';
    this.reason = this.options?.legalGrounds[0] ?? '';
    this.rows = [];
    this.csv = undefined;
    this.fieldErrors = [];
    this.liftRows = [];
    this.liftReference = '';
    this.liftReason = this.options?.liftReasons[0] ?? '';
  }

  // ---- navigation and loading ----

  private stopPolling(): void {
    window.clearInterval(this.pollTimer);
    this.pollTimer = undefined;
  }

  private async navigate(): Promise<void> {
    this.stopPolling();
    const view = viewOfHash(window.location.hash);
    // Another request's page must not show this one's data while it loads.
    const id = 'id' in view ? view.id : undefined;
    if (this.current?.id !== id) this.set({ current: undefined, extensionReason: '', extensionMonths: 1, extensionErrors: [] });
    this.set({ view, error: '', chainChecked: false, audit: undefined });
    const api = this.api;
    if (!api || !this.isOfficer) return;
    try {
      switch (view.name) {
        case 'requests':
        case 'dashboard':
          this.set({ requests: (await api.listRequests(view.name === 'requests' && this.statusFilter !== '' ? this.statusFilter : undefined)).requests });
          break;
        case 'file':
          await this.loadOptions(api);
          if (this.rows.length === 0) this.rows = [emptyRow(this.options?.contexts[0]?.name ?? '')];
          this.requestUpdate();
          break;
        case 'request':
          this.set({ current: await api.getRequest(view.id) });
          this.pollTimer = window.setInterval(() => void this.poll(view.id), POLL_MS);
          break;
        case 'certificate':
          this.set({ current: await api.getRequest(view.id) });
          break;
        case 'audit':
          this.set({ current: await api.getRequest(view.id), audit: await api.auditTrail(view.id) });
          break;
        case 'lifts':
          await this.loadOptions(api);
          if (this.liftRows.length === 0) this.liftRows = [{ ...emptyRow(this.options?.contexts[0]?.name ?? ''), kind: 'pseudonym' }];
          this.set({ lifts: (await api.lifts()).lifts });
          break;
        case 'home':
          break;
      }
    } catch (error) {
      this.set({ error: problemText(error) });
    }
    await this.updateComplete;
    this.querySelector<HTMLElement>('main h1')?.focus();
  }

  private async loadOptions(api: Api): Promise<void> {
    if (this.options) return;
    const options = await api.options();
    this.set({ options, reason: this.reason || (options.legalGrounds[0] ?? ''), liftReason: this.liftReason || (options.liftReasons[0] ?? '') });
  }

  /** Per-table progress while the request is open; stops once it is verified or failed. */
  private async poll(id: string): Promise<void> {
    const api = this.api;
    if (!api || this.view.name !== 'request') return;
    try {
      const request = await api.getRequest(id);
      this.set({ current: request });
      if (request.status === 'verified' || request.status === 'failed') this.stopPolling();
    } catch (error) {
      this.set({ error: problemText(error) });
    }
  }

  // ---- filing ----

  private subjectsFromRows(rows: readonly SubjectRow[], prefix: string): { subjects: SubjectReference[]; errors: string[] } {
    const errors: string[] = [];
    const subjects: SubjectReference[] = [];
    const transforms = new Map(this.options?.contexts.map((c) => [c.name, c.transform]) ?? []);
    rows.forEach((row, index) => {
      const name = `${prefix} ${index + 1}`;
      const text = row.text.trim();
      if (!transforms.has(row.context)) errors.push(`${name}, context: choose one of the listed contexts`);
      if (text === '') errors.push(`${name}, ${row.kind}: must not be empty`);
      const transform = transforms.get(row.context);
      if (row.kind === 'pseudonym' && transform === 'hash') errors.push(`${name}, pseudonym: a hash context cannot be named by pseudonym, give the value`);
      if (row.kind === 'pseudonym' && transform === 'fpe' && row.confirm.trim() === '') errors.push(`${name}, confirm: an FPE pseudonym needs the identifier's last 4 characters`);
      if (row.kind === 'value') subjects.push({ context: row.context, value: text });
      else subjects.push({ context: row.context, pseudonym: text, ...(row.confirm.trim() !== '' ? { confirm: row.confirm.trim() } : {}) });
    });
    return { subjects, errors };
  }

  private async submitFiling(event: SubmitEvent): Promise<void> {
    event.preventDefault();
    const api = this.api;
    if (!api) return;
    const errors: string[] = [];
    if (!REFERENCE_PATTERN.test(this.reference)) errors.push('Reference: a ticket reference of 1-64 letters, digits and . _ : / # -, starting with a letter or digit');
    if (!this.options?.legalGrounds.includes(this.reason)) errors.push('Legal ground: choose one');
    let subjects: SubjectReference[] = [];
    if (this.subjectMode === 'form') {
      const fromRows = this.subjectsFromRows(this.rows, 'Subject');
      subjects = fromRows.subjects;
      errors.push(...fromRows.errors);
    } else if (!this.csv) errors.push('CSV file: choose a file');
    else {
      if (this.csv.fileErrors.length > 0 || this.csv.rows.some((r) => r.errors.length > 0)) errors.push('CSV file: fix the rows marked in the preview, then choose the file again');
      subjects = this.csv.rows.flatMap((r) => (r.subject ? [r.subject] : []));
    }
    if (subjects.length === 0 && errors.length === 0) errors.push('Subjects: name at least one');
    if (subjects.length > MAX_SUBJECTS) errors.push(`Subjects: at most ${MAX_SUBJECTS} per request`);
    if (errors.length > 0) {
      this.set({ fieldErrors: errors });
      await this.updateComplete;
      this.querySelector<HTMLElement>('#filing-errors')?.focus();
      return;
    }
    this.set({ busy: true, fieldErrors: [] });
    try {
      const filed = await api.file({ reference: this.reference, reason: this.reason, subjects });
      // Nothing of the filing is kept once it is sent.
      this.clearFiling();
      this.subjectMode = 'form';
      window.location.hash = `#/requests/${filed.id}`;
    } catch (error) {
      const items = error instanceof ApiProblem ? error.items.map((item) => `Subject ${item.index + 1}: ${item.reason}`) : [];
      this.set({ fieldErrors: [problemText(error), ...items] });
      await this.updateComplete;
      this.querySelector<HTMLElement>('#filing-errors')?.focus();
    } finally {
      this.set({ busy: false });
    }
  }

  private async readCsv(event: Event): Promise<void> {
    const input = event.target as HTMLInputElement;
    const file = input.files?.[0];
    if (!file) {
      this.set({ csv: undefined });
      return;
    }
    const contexts = new Map(this.options?.contexts.map((c) => [c.name, c.transform]) ?? []);
    const text = await file.text();
    // The file input is cleared: the parsed rows are all the page keeps, until the filing is sent.
    input.value = '';
    this.set({ csv: parseSubjectsCsv(text, contexts) });
  }

  private async submitLift(event: SubmitEvent): Promise<void> {
    event.preventDefault();
    const api = this.api;
    if (!api) return;
    const errors: string[] = [];
    if (!REFERENCE_PATTERN.test(this.liftReference)) errors.push('Reference: a ticket reference of 1-64 letters, digits and . _ : / # -, starting with a letter or digit');
    if (!this.options?.liftReasons.includes(this.liftReason)) errors.push('Reason: choose one');
    const { subjects, errors: rowErrors } = this.subjectsFromRows(this.liftRows, 'Pseudonym');
    errors.push(...rowErrors);
    if (errors.length > 0) {
      this.set({ fieldErrors: errors });
      return;
    }
    this.set({ busy: true, fieldErrors: [] });
    try {
      await api.lift({ reference: this.liftReference, reason: this.liftReason, subjects });
      this.liftRows = [{ ...emptyRow(this.options?.contexts[0]?.name ?? ''), kind: 'pseudonym' }];
      this.liftReference = '';
      this.set({ lifts: (await api.lifts()).lifts });
    } catch (error) {
      const items = error instanceof ApiProblem ? error.items.map((item) => `Pseudonym ${item.index + 1}: ${item.reason}`) : [];
      this.set({ fieldErrors: [problemText(error), ...items] });
    } finally {
      this.set({ busy: false });
    }
  }

  private async submitExtension(event: SubmitEvent, id: string): Promise<void> {
    event.preventDefault();
    const api = this.api;
    if (!api) return;
    const reason = this.extensionReason.trim();
    if (reason === '' || reason.length > MAX_EXTENSION_REASON) {
      this.set({ extensionErrors: [`Reason: ${MAX_EXTENSION_REASON} characters at most, and not empty`] });
      await this.updateComplete;
      this.querySelector<HTMLElement>('#extension-errors')?.focus();
      return;
    }
    this.set({ busy: true, extensionErrors: [] });
    try {
      const extended = await api.extend(id, { reason, months: this.extensionMonths });
      this.set({ current: extended, extensionReason: '' });
    } catch (error) {
      this.set({ extensionErrors: [problemText(error)] });
    } finally {
      this.set({ busy: false });
    }
  }

  private renderExtension(r: ErasureRequestView): TemplateResult | typeof nothing {
    const extension = r.extension;
    if (extension) {
      return html`<dt>Extension</dt><dd id="request-extension">${extension.months} month${extension.months === 1 ? '' : 's'}, on ${formatDateTime(extension.at)} by ${extension.by}: ${extension.reason}</dd>`;
    }
    return nothing;
  }

  private renderExtensionForm(r: ErasureRequestView): TemplateResult | typeof nothing {
    if (r.extension || r.status === 'verified') return nothing;
    return html`<h2>Extend the deadline</h2>
      <p class="hint">GDPR Art. 12(3): by one or two further months, once, where the request needs it; the data subject is told why within the first month.</p>
      <form class="extension" @submit=${(e: SubmitEvent) => void this.submitExtension(e, r.id)} novalidate>
        ${this.extensionErrors.length > 0
          ? html`<div id="extension-errors" class="error" role="alert" tabindex="-1"><p>The deadline was not extended:</p><ul>${this.extensionErrors.map((e) => html`<li>${e}</li>`)}</ul></div>`
          : nothing}
        <label for="extension-months">Further months</label>
        <select id="extension-months" @change=${(e: Event) => { this.set({ extensionMonths: inputValue(e) === '2' ? 2 : 1 }); }}>
          <option value="1" ?selected=${this.extensionMonths === 1}>1 month</option>
          <option value="2" ?selected=${this.extensionMonths === 2}>2 months</option>
        </select>
        <label for="extension-reason">Reason</label>
        <p class="hint" id="extension-reason-hint">Why it needs longer, as you would tell the data subject (at most ${MAX_EXTENSION_REASON} characters). Kept with the request for officers; the audit trail records the months and the new deadline.</p>
        <textarea id="extension-reason" rows="3" maxlength=${MAX_EXTENSION_REASON} aria-describedby="extension-reason-hint" .value=${this.extensionReason} @input=${(e: Event) => { this.extensionReason = inputValue(e); }}></textarea>
        <button type="submit" ?disabled=${this.busy}>Extend the deadline</button>
      </form>`;
  }

  private async verifyChain(id: string): Promise<void> {
    const api = this.api;
    if (!api) return;
    try {
      this.set({ audit: await api.auditTrail(id), chainChecked: true });
    } catch (error) {
      this.set({ error: problemText(error) });
    }
  }

  private downloadCertificate(request: ErasureRequestView): void {
    const blob = new Blob([`${JSON.stringify(request.certificate, null, 2)}\n`], { type: 'application/json' });
    const link = document.createElement('a');
    link.href = URL.createObjectURL(blob);
    link.download = `erasure-certificate-${request.id}.json`;
    link.click();
    window.setTimeout(() => {
      URL.revokeObjectURL(link.href);
    }, 1000);
  }

  // ---- rendering ----

  protected override render(): TemplateResult {
    if (!this.session) return this.renderSignIn();
    const nav = this.isOfficer
      ? [
          ['#/requests', 'Requests'],
          ['#/file', 'File a request'],
          ['#/dashboard', 'Dashboard'],
          ['#/lifts', 'Suppressions'],
        ]
      : [];
    return html`<a class="skip" href="#main-content" @click=${(e: Event) => { e.preventDefault(); this.querySelector<HTMLElement>('main h1')?.focus(); }}>Skip to content</a>
      <header class="bar no-print">
        <p class="brand">Erasure console</p>
        <nav aria-label="Sections">
          <ul>
            ${nav.map(([href, label]) => html`<li><a href=${href!} aria-current=${this.navCurrent(href!) ? 'page' : nothing}>${label}</a></li>`)}
          </ul>
        </nav>
        <p class="who">Signed in as <strong>${this.session.username}</strong> (${this.session.roles.join(', ')}), until ${this.session.expiresAt.toISOString().slice(11, 16)} UTC
          <button type="button" class="link" @click=${() => { this.endSession('You signed out.'); }}>Sign out</button></p>
      </header>
      <main id="main-content">
        ${this.error ? html`<p class="error" role="alert">${this.error}</p>` : nothing}
        ${this.renderView()}
      </main>`;
  }

  private navCurrent(href: string): boolean {
    const name = this.view.name;
    return (href === '#/requests' && (name === 'requests' || name === 'request' || name === 'certificate' || name === 'audit')) || href === `#/${name}`;
  }

  private renderView(): TemplateResult {
    if (!this.isOfficer) {
      return html`<h1 tabindex="-1">Your role</h1>
        <p>Your directory groups give you the ${this.session?.roles.join(', ')} role. Filing, following and proving erasure requests is for privacy officers
          (the <code>privacy-officer</code> role): ask your directory administrator if you need it.</p>`;
    }
    switch (this.view.name) {
      case 'home':
      case 'requests':
        return this.renderRequests();
      case 'file':
        return this.renderFiling();
      case 'request':
        return this.renderRequest();
      case 'certificate':
        return this.renderCertificate();
      case 'audit':
        return this.renderAudit(this.view.id);
      case 'dashboard':
        return this.renderDashboard();
      case 'lifts':
        return this.renderLifts();
    }
  }

  private renderSignIn(): TemplateResult {
    return html`<main id="main-content" class="sign-in">
      <h1>Erasure console</h1>
      <p>For privacy officers: file, follow and prove erasure requests. Sign in with your directory account.</p>
      ${this.notice ? html`<p id="notice" class="notice" role="status" tabindex="-1">${this.notice}</p>` : nothing}
      <form @submit=${(e: SubmitEvent) => void this.submitSignIn(e)} novalidate>
        <label for="username">User name</label>
        <input id="username" name="username" autocomplete="username" required>
        <label for="password">Password</label>
        <input id="password" name="password" type="password" autocomplete="current-password" required>
        ${this.error ? html`<p class="error" role="alert">${this.error}</p>` : nothing}
        <button type="submit" ?disabled=${this.busy}>Sign in</button>
      </form>
    </main>`;
  }

  private renderRequests(): TemplateResult {
    const now = new Date();
    const search = this.referenceSearch.trim().toLowerCase();
    const shown = this.requests.filter((r) => search === '' || r.reference.toLowerCase().includes(search));
    return html`<h1 tabindex="-1">Erasure requests</h1>
      <div class="filters">
        <div>
          <label for="status-filter">Status</label>
          <select id="status-filter" @change=${(e: Event) => { this.statusFilter = inputValue(e) as ErasureStatus | ''; void this.navigate(); }}>
            <option value="" ?selected=${this.statusFilter === ''}>All</option>
            ${ERASURE_STATUSES.map((s) => html`<option value=${s} ?selected=${this.statusFilter === s}>${s}</option>`)}
          </select>
        </div>
        <div>
          <label for="reference-search">Reference contains</label>
          <input id="reference-search" type="search" .value=${this.referenceSearch} @input=${(e: Event) => { this.set({ referenceSearch: inputValue(e) }); }}>
        </div>
      </div>
      <p class="muted">Deadline: one month from filing (GDPR Art. 12(3)), up to three once extended with a reason. <span class="badge overdue">Overdue</span> marks requests past it and not verified.</p>
      ${shown.length === 0
        ? html`<p>No request matches.</p>`
        : html`<table class="requests">
            <caption class="visually-hidden">Erasure requests, oldest first</caption>
            <thead><tr><th scope="col">Reference</th><th scope="col">Status</th><th scope="col">Legal ground</th><th scope="col">Subjects</th><th scope="col">Filed</th><th scope="col">Deadline</th><th scope="col">Attempts</th></tr></thead>
            <tbody>
              ${shown.map((r) => {
                const overdue = isOverdue(r, now);
                return html`<tr class=${overdue ? 'overdue' : ''}>
                  <td><a href=${`#/requests/${r.id}`}>${r.reference}</a></td>
                  <td><span class=${`status status-${r.status}`}>${r.status}</span></td>
                  <td><abbr title=${meaningOf(LEGAL_GROUND_MEANINGS, r.reason)}>${r.reason}</abbr></td>
                  <td>${r.subjects.count} in ${r.subjects.contexts.join(', ')}</td>
                  <td>${formatDate(new Date(r.createdAt))}</td>
                  <td>${formatDate(requestDeadline(r))}${r.extension ? ` (extended ${r.extension.months} mo.)` : ''} ${overdue ? html`<span class="badge overdue">Overdue</span>` : nothing}</td>
                  <td>${r.attempts}</td>
                </tr>`;
              })}
            </tbody>
          </table>`}`;
  }

  private renderSubjectRows(rows: SubjectRow[], prefix: string, pseudonymsOnly: boolean): TemplateResult {
    const contexts = this.options?.contexts ?? [];
    const update = (index: number, patch: Partial<SubjectRow>) => {
      Object.assign(rows[index]!, patch);
      this.requestUpdate();
    };
    return html`${rows.map((row, index) => {
        const id = `${prefix.toLowerCase()}-${index}`;
        const transform = contexts.find((c) => c.name === row.context)?.transform;
        return html`<fieldset class="subject">
          <legend>${prefix} ${index + 1}</legend>
          <div class="row">
            <div>
              <label for=${`${id}-context`}>Context</label>
              <select id=${`${id}-context`} @change=${(e: Event) => { update(index, { context: inputValue(e) }); }}>
                ${contexts.map((c) => html`<option value=${c.name} ?selected=${c.name === row.context}>${c.name} (${c.transform}, ${c.tables} table${c.tables === 1 ? '' : 's'})</option>`)}
              </select>
            </div>
            ${pseudonymsOnly
              ? nothing
              : html`<div>
                  <label for=${`${id}-kind`}>Named by</label>
                  <select id=${`${id}-kind`} @change=${(e: Event) => { update(index, { kind: inputValue(e) === 'pseudonym' ? 'pseudonym' : 'value' }); }}>
                    <option value="value" ?selected=${row.kind === 'value'}>Identifier (value)</option>
                    <option value="pseudonym" ?selected=${row.kind === 'pseudonym'}>Pseudonym</option>
                  </select>
                </div>`}
            <div class="grow">
              <label for=${`${id}-text`}>${row.kind === 'value' ? 'Identifier' : 'Pseudonym'}</label>
              <input id=${`${id}-text`} autocomplete="off" spellcheck="false" .value=${row.text} @input=${(e: Event) => { row.text = inputValue(e); }}>
            </div>
            ${row.kind === 'pseudonym' && transform === 'fpe'
              ? html`<div>
                  <label for=${`${id}-confirm`}>Last 4 characters of the identifier</label>
                  <input id=${`${id}-confirm`} autocomplete="off" spellcheck="false" .value=${row.confirm} @input=${(e: Event) => { row.confirm = inputValue(e); }}>
                </div>`
              : nothing}
            <div>
              <button type="button" class="secondary" ?disabled=${rows.length === 1} @click=${() => { rows.splice(index, 1); this.requestUpdate(); }}>Remove ${prefix.toLowerCase()} ${index + 1}</button>
            </div>
          </div>
        </fieldset>`;
      })}
      <button type="button" class="secondary" ?disabled=${rows.length >= MAX_SUBJECTS} @click=${() => { rows.push({ ...emptyRow(contexts[0]?.name ?? ''), kind: pseudonymsOnly ? 'pseudonym' : 'value' }); this.requestUpdate(); }}>Add a ${prefix.toLowerCase()}</button>`;
  }

  private renderErrors(): TemplateResult | typeof nothing {
    if (this.fieldErrors.length === 0) return nothing;
    return html`<div id="filing-errors" class="error" role="alert" tabindex="-1">
      <p>The request was not sent:</p>
      <ul>${this.fieldErrors.map((e) => html`<li>${e}</li>`)}</ul>
    </div>`;
  }

  private renderFiling(): TemplateResult {
    const options = this.options;
    if (!options) return html`<h1 tabindex="-1">File an erasure request</h1><p>Loading…</p>`;
    const csv = this.csv;
    const good = csv?.rows.filter((r) => r.errors.length === 0).length ?? 0;
    return html`<h1 tabindex="-1">File an erasure request</h1>
      <form class="filing" @submit=${(e: SubmitEvent) => void this.submitFiling(e)} novalidate>
        ${this.renderErrors()}
        <label for="reference">Reference (your ticket)</label>
        <p class="hint" id="reference-hint">1-64 letters, digits and . _ : / # - : a ticket number, never a person's name or e-mail.</p>
        <input id="reference" aria-describedby="reference-hint" autocomplete="off" .value=${this.reference} @input=${(e: Event) => { this.reference = inputValue(e); }}>
        <label for="reason">Legal ground</label>
        <select id="reason" aria-describedby="reason-meaning" @change=${(e: Event) => { this.set({ reason: inputValue(e) }); }}>
          ${options.legalGrounds.map((g) => html`<option value=${g} ?selected=${g === this.reason}>${g}</option>`)}
        </select>
        <p class="hint" id="reason-meaning">${meaningOf(LEGAL_GROUND_MEANINGS, this.reason)}</p>
        <fieldset>
          <legend>Subjects</legend>
          <div class="choice">
            <input type="radio" id="mode-form" name="mode" value="form" ?checked=${this.subjectMode === 'form'} @change=${() => { this.set({ subjectMode: 'form' }); }}>
            <label for="mode-form">One by one</label>
            <input type="radio" id="mode-csv" name="mode" value="csv" ?checked=${this.subjectMode === 'csv'} @change=${() => { this.set({ subjectMode: 'csv' }); }}>
            <label for="mode-csv">From a CSV file</label>
          </div>
          ${this.subjectMode === 'form'
            ? this.renderSubjectRows(this.rows, 'Subject', false)
            : html`<label for="csv-file">CSV file</label>
                <p class="hint" id="csv-hint">First line: <code>context,value</code> or <code>context,pseudonym,keyVersion,confirm</code>. The file is read here, in your browser; nothing is sent before you file.</p>
                <input id="csv-file" type="file" accept=".csv,text/csv" aria-describedby="csv-hint" @change=${(e: Event) => void this.readCsv(e)}>
                ${csv ? this.renderCsvPreview(csv, good) : nothing}`}
        </fieldset>
        <button type="submit" ?disabled=${this.busy}>File the request</button>
      </form>`;
  }

  private renderCsvPreview(csv: CsvResult, good: number): TemplateResult {
    if (csv.fileErrors.length > 0) return html`<div class="error" role="alert"><p>The file cannot be used:</p><ul>${csv.fileErrors.map((e) => html`<li>${e}</li>`)}</ul></div>`;
    const bad = csv.rows.length - good;
    return html`<p role="status" class=${bad > 0 ? 'error' : 'ok'}>${csv.rows.length} row(s): ${good} ready${bad > 0 ? `, ${bad} with errors (fix the file and choose it again)` : ''}.</p>
      <table class="preview">
        <caption>Preview of the file</caption>
        <thead><tr><th scope="col">Row</th><th scope="col">Context</th><th scope="col">Named by</th><th scope="col">Subject</th><th scope="col">Check</th></tr></thead>
        <tbody>
          ${csv.rows.map((r) => html`<tr class=${r.errors.length > 0 ? 'bad' : ''}>
            <td>${r.row}</td>
            <td>${r.subject?.context ?? ''}</td>
            <td>${r.subject ? ('value' in r.subject ? 'identifier' : 'pseudonym') : ''}</td>
            <td class="mono">${r.subject ? ('value' in r.subject ? r.subject.value : r.subject.pseudonym) : ''}</td>
            <td>${r.errors.length > 0 ? r.errors.join('; ') : 'ready'}</td>
          </tr>`)}
        </tbody>
      </table>`;
  }

  private renderRequest(): TemplateResult {
    const r = this.current;
    if (!r) return html`<h1 tabindex="-1">Erasure request</h1><p>Loading…</p>`;
    const deadline = requestDeadline(r);
    const overdue = isOverdue(r, new Date());
    return html`<h1 tabindex="-1">Request ${r.reference}</h1>
      <dl class="facts">
        <dt>Status</dt><dd><span class=${`status status-${r.status}`} id="request-status">${r.status}</span> ${meaningOf(STATUS_MEANINGS, r.status)}</dd>
        <dt>Legal ground</dt><dd>${r.reason}: ${meaningOf(LEGAL_GROUND_MEANINGS, r.reason)}</dd>
        <dt>Subjects</dt><dd>${r.subjects.count} in ${r.subjects.contexts.join(', ')}</dd>
        <dt>Filed</dt><dd>${formatDateTime(r.createdAt)}</dd>
        <dt>Deadline</dt><dd><span id="request-deadline">${formatDate(deadline)}</span>${r.extension ? ' (extended)' : ''} ${overdue ? html`<span class="badge overdue">Overdue</span>` : nothing}</dd>
        ${this.renderExtension(r)}
        <dt>Attempts</dt><dd>${r.attempts}</dd>
        <dt>Last change</dt><dd>${formatDateTime(r.updatedAt)}</dd>
        ${r.error ? html`<dt>Why it failed</dt><dd class="error-text">${r.error}</dd>` : nothing}
      </dl>
      <h2>Progress by table</h2>
      <p class="muted" aria-live="polite">${r.status === 'received' || r.status === 'running' ? 'Updated every few seconds.' : 'Final.'}</p>
      <table>
        <caption class="visually-hidden">Progress by table</caption>
        <thead><tr><th scope="col">Table</th><th scope="col">Status</th><th scope="col">Detail</th></tr></thead>
        <tbody>${r.tables.map((t) => html`<tr><td class="mono">${t.table}</td><td><span class=${`status status-${t.status}`}>${t.status}</span></td><td>${t.detail ?? ''}</td></tr>`)}</tbody>
      </table>
      <h2>Proof</h2>
      <ul class="links">
        ${r.certificate ? html`<li><a href=${`#/requests/${r.id}/certificate`}>Certificate</a></li>` : html`<li>The certificate appears here once the request is verified.</li>`}
        <li><a href=${`#/requests/${r.id}/audit`}>Audit trail</a></li>
      </ul>
      ${this.renderExtensionForm(r)}`;
  }

  private renderCertificate(): TemplateResult {
    const r = this.current;
    const certificate = r?.certificate;
    if (!r || !certificate) return html`<h1 tabindex="-1">Erasure certificate</h1><p>${r ? 'This request has no certificate yet.' : 'Loading…'}</p>`;
    return html`<div class="no-print actions">
        <a href=${`#/requests/${r.id}`}>Back to the request</a>
        <button type="button" @click=${() => { window.print(); }}>Print</button>
        <button type="button" class="secondary" @click=${() => { this.downloadCertificate(r); }}>Download JSON</button>
      </div>
      <article class="certificate">
        <h1 tabindex="-1">Erasure certificate</h1>
        <dl class="facts">
          <dt>Request</dt><dd>${r.reference} (<span class="mono">${r.id}</span>)</dd>
          <dt>Legal ground</dt><dd>${meaningOf(LEGAL_GROUND_MEANINGS, r.reason)}</dd>
          <dt>Result</dt><dd><strong>${certificate.result}</strong></dd>
          <dt>Run</dt><dd class="mono">${certificate.runId}</dd>
          <dt>Ran</dt><dd>${formatDateTime(certificate.startedAt)} to ${formatDateTime(certificate.finishedAt)}</dd>
          <dt>Subjects</dt><dd>${certificate.subjects} (${certificate.pseudonymsSearched} pseudonyms searched)</dd>
        </dl>
        ${certificate.tables.map((t) => html`<section class="table-report">
          <h2 class="mono">${t.table}</h2>
          <table>
            <caption class="visually-hidden">What was done in ${t.table}</caption>
            <tbody>
              <tr><th scope="row">Snapshot before</th><td class="mono">${t.snapshotBefore ?? 'none'}</td></tr>
              <tr><th scope="row">Snapshot after</th><td class="mono">${t.snapshotAfter ?? 'none'}</td></tr>
              <tr><th scope="row">Rows deleted</th><td>${t.rowsDeleted}</td></tr>
              <tr><th scope="row">Other rows before / after</th><td>${t.verification.otherRowsBefore} / ${t.verification.otherRowsAfter}</td></tr>
              <tr><th scope="row">Data files rewritten</th><td>${t.dataFilesRewritten}</td></tr>
              <tr><th scope="row">Old snapshots' files deleted</th><td>${Object.entries(t.filesDeletedByExpiry).map(([k, v]) => `${k}: ${v}`).join(', ') || 'none'}</td></tr>
              <tr><th scope="row">Orphan files deleted</th><td>${t.orphanFilesDeleted}</td></tr>
              <tr><th scope="row">Verification method</th><td>${t.verification.method}</td></tr>
              <tr><th scope="row">Files scanned</th><td>${t.verification.filesScanned}</td></tr>
              <tr><th scope="row">Bytes scanned</th><td>${formatBytes(t.verification.bytesScanned)}</td></tr>
              <tr><th scope="row">Snapshots checked</th><td>${t.verification.snapshotsChecked}</td></tr>
              <tr><th scope="row">Files still matching</th><td>${t.verification.filesWithMatches.length}</td></tr>
              <tr><th scope="row">Verification</th><td><strong>${t.verification.result}</strong></td></tr>
            </tbody>
          </table>
        </section>`)}
      </article>`;
  }

  private renderAudit(id: string): TemplateResult {
    const trail = this.audit;
    const r = this.current;
    if (!trail || !r) return html`<h1 tabindex="-1">Audit trail</h1><p>Loading…</p>`;
    const chain = trail.chain;
    return html`<p class="no-print"><a href=${`#/requests/${id}`}>Back to the request</a></p>
      <h1 tabindex="-1">Audit trail of ${r.reference}</h1>
      <p>Every change of this request is an entry in the ledger's hash chain: each entry's hash covers the one before it.</p>
      <table class="audit">
        <caption class="visually-hidden">Audit entries of this request, oldest first</caption>
        <thead><tr><th scope="col">#</th><th scope="col">When</th><th scope="col">Who</th><th scope="col">What</th><th scope="col">Outcome</th><th scope="col">Hash</th></tr></thead>
        <tbody>${trail.entries.map((e) => html`<tr><td>${e.seq}</td><td>${formatDateTime(e.at)}</td><td>${e.actor}</td><td>${e.action}</td><td>${e.outcome}</td><td class="mono"><abbr title=${e.hash}>${e.hash.slice(0, 12)}…</abbr></td></tr>`)}</tbody>
      </table>
      <button type="button" @click=${() => void this.verifyChain(id)}>Verify chain</button>
      ${this.chainChecked
        ? html`<div id="chain-result" role="status" class=${chain.valid ? 'ok' : 'error'}>
            ${chain.valid
              ? html`<p>The chain holds: all ${chain.entries} entries link up and their hashes are right.</p>`
              : html`<p>The chain is broken at entry ${chain.brokenAt ?? '?'}: the ledger was changed outside the service.</p>`}
            <p>Head hash (entry ${chain.headSeq}), to keep elsewhere (a ticket, an e-mail to yourself): a later check that finds this hash at this entry shows nothing before it was changed.</p>
            <p><code class="hash" id="head-hash">${chain.headHash}</code></p>
          </div>`
        : nothing}`;
  }

  private renderDashboard(): TemplateResult {
    const now = new Date();
    const overdue = this.requests.filter((r) => isOverdue(r, now)).length;
    const open = this.requests.filter((r) => r.status === 'received' || r.status === 'running').length;
    return html`<h1 tabindex="-1">Dashboard</h1>
      <p>${this.requests.length} requests, ${open} open, ${overdue} overdue.</p>
      <div class="charts">
        ${barChart('Open requests by age', openByAge(this.requests, now))}
        ${barChart('Time from filing to verified', filingToVerified(this.requests))}
        ${barChart('Requests filed per week (week starting)', perWeek(this.requests, now))}
      </div>`;
  }

  private renderLifts(): TemplateResult {
    const options = this.options;
    return html`<h1 tabindex="-1">Suppressions</h1>
      <p>A filed subject stays suppressed (pseudonymize withholds it, reidentify answers <code>erased</code>) until a lift with a lawful basis. Data already erased stays erased.</p>
      <h2>Lifts so far</h2>
      ${this.lifts.length === 0
        ? html`<p>No lifts.</p>`
        : html`<table>
            <caption class="visually-hidden">Lifts of suppression, oldest first</caption>
            <thead><tr><th scope="col">Reference</th><th scope="col">Reason</th><th scope="col">When</th><th scope="col">Subjects</th></tr></thead>
            <tbody>${this.lifts.map((l) => html`<tr><td>${l.reference}</td><td><abbr title=${meaningOf(LIFT_REASON_MEANINGS, l.reason)}>${l.reason}</abbr></td><td>${formatDateTime(l.createdAt)}</td><td>${l.subjects.count} in ${l.subjects.contexts.join(', ')}</td></tr>`)}</tbody>
          </table>`}
      <h2>Lift a suppression</h2>
      ${options
        ? html`<form @submit=${(e: SubmitEvent) => void this.submitLift(e)} novalidate>
            ${this.renderErrors()}
            <label for="lift-reference">Reference (your ticket)</label>
            <input id="lift-reference" autocomplete="off" .value=${this.liftReference} @input=${(e: Event) => { this.liftReference = inputValue(e); }}>
            <label for="lift-reason">Reason</label>
            <select id="lift-reason" aria-describedby="lift-reason-meaning" @change=${(e: Event) => { this.set({ liftReason: inputValue(e) }); }}>
              ${options.liftReasons.map((g) => html`<option value=${g} ?selected=${g === this.liftReason}>${g}</option>`)}
            </select>
            <p class="hint" id="lift-reason-meaning">${meaningOf(LIFT_REASON_MEANINGS, this.liftReason)}</p>
            ${this.renderSubjectRows(this.liftRows, 'Pseudonym', true)}
            <button type="submit" ?disabled=${this.busy}>Lift</button>
          </form>`
        : html`<p>Loading…</p>`}`;
  }
}
