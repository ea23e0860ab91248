/**
 * A person signs in with their directory credentials: the throttle, the directory's search-then-bind,
 * the roles, the session token, and an audit entry for every outcome. Transport-free: the HTTP route
 * only maps the answer (a session, or a typed refusal) to a response.
 *
 * Every way of failing the credentials (unknown user, wrong password, locked account, filtered out,
 * injection attempt, empty password) is the same refusal, and each counts toward the throttle for
 * that user name and address.
 *
 * Whose name: the directory matches names loosely (` erin`, `ｅｒｉｎ`, `ſteve`), so the typed
 * spelling names no one. The throttle is asked first under the normalised spelling (throttle.ts),
 * without a directory round trip; once the directory has found the entry, the person is its own name
 * (PSEUDO_LDAP_USERNAME_ATTRIBUTE) for the session, the audit entry and the throttle, whatever was typed.
 */
import type { AuditLog } from '../audit/auditLog.ts';
import { DirectoryError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import { SignInRejected, type LdapDirectory } from './directory.ts';
import type { Role } from './roles.ts';
import type { IssuedSession, SessionTokens } from './sessions.ts';
import { normalizeUserName, type LoginThrottle } from './throttle.ts';

function userKey(name: string): string {
  return `user:${normalizeUserName(name)}`;
}

export interface SignInAttempt {
  readonly username: string;
  readonly password: string;
  /** The peer's address, for the throttle and the audit entry. */
  readonly clientAddress: string | undefined;
  readonly requestId: string;
}

export type SignInOutcome =
  | { readonly kind: 'signed-in'; readonly username: string; readonly roles: readonly Role[]; readonly session: IssuedSession }
  /** Wrong credentials in any of their forms: one answer, so a caller learns nothing about which. */
  | { readonly kind: 'refused'; readonly reason: 'invalid-credentials'; readonly username: string | undefined }
  /** The person is known but their groups map to no role. */
  | { readonly kind: 'refused'; readonly reason: 'no-role'; readonly username: string }
  | { readonly kind: 'refused'; readonly reason: 'throttled'; readonly retryAfterSeconds: number; readonly username: undefined };

export interface SignInDependencies {
  readonly directory: LdapDirectory;
  readonly throttle: LoginThrottle;
  readonly sessions: SessionTokens;
  readonly audit: AuditLog;
  readonly logger: Logger;
}

/** Signs a person in. A directory that cannot be reached throws DirectoryError (not the person's fault). */
export async function signIn(dependencies: SignInDependencies, attempt: SignInAttempt): Promise<SignInOutcome> {
  const { directory, throttle, sessions, audit, logger } = dependencies;
  const { username, password, clientAddress, requestId } = attempt;
  const typedKey = userKey(username);
  const addressKey = `address:${clientAddress ?? 'unknown'}`;
  const base = { action: 'sign-in' as const, requestId, clientAddress };
  const throttled = (retryAfterSeconds: number): SignInOutcome => {
    audit.record({ ...base, outcome: 'denied', actor: { kind: 'anonymous' }, reason: 'throttled' });
    return { kind: 'refused', reason: 'throttled', retryAfterSeconds, username: undefined };
  };
  const retryAfter = throttle.retryAfter([typedKey, addressKey]);
  if (retryAfter > 0) return throttled(retryAfter);
  let person;
  try {
    person = await directory.authenticate(username, password);
  } catch (error) {
    if (error instanceof SignInRejected) {
      // A spelling normalisation did not catch still meets the person's own lock (and gets the same answer as a right password would).
      const identityKey = error.identity === undefined ? undefined : userKey(error.identity);
      const lockedBefore = identityKey === undefined ? 0 : throttle.retryAfter([identityKey]);
      throttle.failed([...new Set([typedKey, identityKey ?? typedKey, addressKey])]);
      if (lockedBefore > 0) return throttled(lockedBefore);
      // A name that is not in the directory may be a mistyped password: it is not written down. Nor is a name two entries answer to.
      const actor = error.identity === undefined ? { kind: 'anonymous' as const } : { kind: 'person' as const, id: error.identity };
      audit.record({ ...base, outcome: 'failure', actor, reason: error.reason });
      return { kind: 'refused', reason: 'invalid-credentials', username: error.identity };
    }
    if (error instanceof DirectoryError) {
      audit.record({ ...base, outcome: 'failure', actor: { kind: 'anonymous' }, reason: 'directory-unavailable' });
      logger.error({ requestId, error: error.message }, 'directory sign-in failed');
    }
    throw error;
  }
  const identityKey = userKey(person.username);
  const identityLocked = throttle.retryAfter([identityKey]);
  if (identityLocked > 0) return throttled(identityLocked);
  throttle.succeeded(typedKey);
  throttle.succeeded(identityKey);
  const actor = { kind: 'person' as const, id: person.username };
  if (person.roles.length === 0) {
    audit.record({ ...base, outcome: 'denied', actor, reason: 'no-role' });
    return { kind: 'refused', reason: 'no-role', username: person.username };
  }
  const session = await sessions.issue(person.username, person.roles);
  audit.record({ ...base, outcome: 'success', actor });
  return { kind: 'signed-in', username: person.username, roles: person.roles, session };
}
