/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/**
 * The console's one way to call the API: same origin, the session token in a closure (memory only: never in
 * localStorage, sessionStorage, a cookie or the URL), problem+json answers turned into `ApiProblem`s whose text
 * is the API's own detail (which names fields, never values). A 401 ends the session wherever it happens.
 */
import type { Role } from '../../api/auth/roles.ts';
import type { ErasureCertificate } from '../../api/contracts/contracts.ts';
import type { ErasureStatus } from '../../api/erasure/ledger.ts';
import type { LiftView } from '../../api/erasure/lifts.ts';
import type { ErasureRequestView as ServerRequestView, ErasureSubjectReference } from '../../api/erasure/requests.ts';

export type { ErasureStatus, LiftView, Role };

export const ERASURE_STATUSES: readonly ErasureStatus[] = ['received', 'running', 'verified', 'failed'];

export interface Session {
  readonly username: string;
  readonly token: string;
  readonly expiresAt: Date;
  readonly roles: readonly Role[];
}

/** GET /v1/erasure-requests/{id} (api/erasure/requests.ts `viewOf`), with the certificate's contract type. */
export type ErasureRequestView = Omit<ServerRequestView, 'certificate'> & { readonly certificate?: ErasureCertificate };

export interface ErasureContext {
  readonly name: string;
  readonly transform: 'deterministic' | 'hash' | 'fpe';
  readonly tables: number;
}

export interface ErasureOptions {
  readonly legalGrounds: readonly string[];
  readonly liftReasons: readonly string[];
  readonly contexts: readonly ErasureContext[];
}

export interface AuditEntry {
  readonly seq: number;
  readonly at: string;
  readonly actor: string;
  readonly action: string;
  readonly requestId?: string;
  readonly outcome: string;
  readonly previousHash: string;
  readonly hash: string;
}

export interface AuditTrail {
  readonly entries: readonly AuditEntry[];
  readonly chain: { readonly entries: number; readonly valid: boolean; readonly brokenAt?: number; readonly headSeq: number; readonly headHash: string };
}

export type SubjectReference = ErasureSubjectReference;

/** A refusal as the API said it (problem+json), or a network failure said plainly. */
export class ApiProblem extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    readonly detail: string,
    /** Per-item errors (subject indexes and reasons), when the API gave them. */
    readonly items: readonly { readonly index: number; readonly reason: string }[] = [],
  ) {
    super(detail);
    this.name = 'ApiProblem';
  }
}

async function problemOf(response: Response): Promise<ApiProblem> {
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    body = undefined;
  }
  const record = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
  const detail = typeof record.detail === 'string' ? record.detail : typeof record.title === 'string' ? record.title : `the service answered ${response.status}`;
  const errors = Array.isArray(record.errors) ? (record.errors as unknown[]).filter((e): e is { index: number; reason: string } => typeof e === 'object' && e !== null && 'index' in e && 'reason' in e) : [];
  return new ApiProblem(response.status, typeof record.type === 'string' ? record.type : 'about:blank', detail, errors);
}

async function send(method: 'GET' | 'POST', path: string, token: string | undefined, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  try {
    // credentials 'omit': the API uses no cookies, and the console must not send any it never set.
    // Relative to the page (<base>/console/): the API is at <base>/v1/…, whatever prefix <base> is (none on the
    // server, the stage behind API Gateway), on the same origin either way.
    return await fetch(`..${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'omit', cache: 'no-store', referrerPolicy: 'no-referrer' });
  } catch {
    throw new ApiProblem(0, 'network', 'the service could not be reached');
  }
}

export async function signIn(username: string, password: string): Promise<Session> {
  const response = await send('POST', '/v1/login', undefined, { username, password });
  if (!response.ok) throw await problemOf(response);
  const body = (await response.json()) as { token: string; expiresAt: string; roles: Role[] };
  return { username, token: body.token, expiresAt: new Date(body.expiresAt), roles: body.roles };
}

/** Calls made with one session; `onUnauthenticated` runs when the API says the token is no longer good. */
export class Api {
  constructor(
    private readonly session: Session,
    private readonly onUnauthenticated: () => void,
  ) {}

  private async call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const response = await send(method, path, this.session.token, body);
    if (response.status === 401) this.onUnauthenticated();
    if (!response.ok) throw await problemOf(response);
    return (await response.json()) as T;
  }

  listRequests(status: ErasureStatus | undefined): Promise<{ requests: ErasureRequestView[] }> {
    return this.call('GET', status ? `/v1/erasure-requests?status=${status}` : '/v1/erasure-requests');
  }

  getRequest(id: string): Promise<ErasureRequestView> {
    return this.call('GET', `/v1/erasure-requests/${encodeURIComponent(id)}`);
  }

  auditTrail(id: string): Promise<AuditTrail> {
    return this.call('GET', `/v1/erasure-requests/${encodeURIComponent(id)}/audit`);
  }

  /** The reason goes in the body only, never in a URL. */
  extend(id: string, extension: { reason: string; months: 1 | 2 }): Promise<ErasureRequestView> {
    return this.call('POST', `/v1/erasure-requests/${encodeURIComponent(id)}/extension`, extension);
  }

  options(): Promise<ErasureOptions> {
    return this.call('GET', '/v1/erasure-options');
  }

  /** Subjects go in the body only, never in a URL. */
  file(filing: { reference: string; reason: string; subjects: readonly SubjectReference[] }): Promise<ErasureRequestView> {
    return this.call('POST', '/v1/erasure-requests', filing);
  }

  lifts(): Promise<{ lifts: LiftView[] }> {
    return this.call('GET', '/v1/erasure-lifts');
  }

  lift(filing: { reference: string; reason: string; subjects: readonly SubjectReference[] }): Promise<LiftView> {
    return this.call('POST', '/v1/erasure-lifts', filing);
  }
}
