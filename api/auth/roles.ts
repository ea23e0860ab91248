/** Roles, the principal a request acts as (a machine's API key or a person from the directory), and the one role check. */
import { AuthError } from '../errors.ts';

/**
 * `rewrap` turns pseudonyms into the same subjects' pseudonyms under the active key without showing the values, so a
 * re-keying job never holds `reidentify`; `admin` operates the running service (keyring reload).
 */
export const ROLES = ['pseudonymize', 'reidentify', 'rewrap', 'privacy-officer', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export interface Principal {
  readonly kind: 'api-key' | 'person';
  /** API key id or directory user name: what the access log and the audit log record. */
  readonly id: string;
  readonly name: string;
  readonly roles: ReadonlySet<Role>;
  /** Contexts the principal may use; undefined means any. */
  readonly contexts: ReadonlySet<string> | undefined;
}

/** 403 unless the principal holds the role and, where it is scoped, the context. */
export function authorize(principal: Principal, role: Role, context?: string): void {
  const who = principal.kind === 'api-key' ? 'this API key' : 'your directory groups';
  if (!principal.roles.has(role)) throw new AuthError('forbidden', `${who} do${principal.kind === 'api-key' ? 'es' : ''} not grant the ${role} role`);
  if (context !== undefined && principal.contexts && !principal.contexts.has(context)) {
    throw new AuthError('forbidden', `${who} may not use this context`);
  }
}
