/**
 * Audit entries: who did what, when, with which outcome. Written for every sign-in (success or
 * failure), every reidentify and keyring reload, and every forced key destruction, by machines and people alike. Entries name people by user name and
 * machines by API key id; they never hold values, pseudonyms, passwords or keys.
 *
 * This implementation writes them as structured log lines marked `"audit": true` to the service's
 * log stream (CloudWatch for Lambda). The tamper-evident audit store of the erasure work plugs in
 * behind the same interface.
 */
import type { Logger } from '../observability/logger.ts';

export interface AuditEvent {
  readonly action: 'sign-in' | 'reidentify' | 'rewrap' | 'keyring-reload' | 'key-destroy';
  readonly outcome: 'success' | 'denied' | 'failure';
  readonly actor: { readonly kind: 'api-key' | 'person' | 'anonymous'; readonly id?: string | undefined };
  readonly requestId: string;
  readonly clientAddress?: string | undefined;
  /** Why it was denied or failed, as a short code. */
  readonly reason?: string | undefined;
  readonly context?: string | undefined;
  readonly count?: number | undefined;
  /** key-destroy: the version destroyed, and, when forced, the registered tables that might still hold it. */
  readonly keyVersion?: number | undefined;
  readonly tables?: readonly string[] | undefined;
  /** key-destroy, when forced past suppressions it leaves unmatched: their count is `count`, their contexts these. */
  readonly contexts?: readonly string[] | undefined;
}

export interface AuditLog {
  record(event: AuditEvent): void;
}

export class LogStreamAuditLog implements AuditLog {
  constructor(private readonly logger: Logger) {}

  record(event: AuditEvent): void {
    this.logger.info({ audit: true, at: new Date().toISOString(), ...event }, 'audit');
  }
}
