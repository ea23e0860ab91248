/**
 * Every error that crosses a module border, each with a stable code a caller can branch on.
 * The HTTP edge (api/http/problem.ts) maps codes to status and problem+json `type`.
 *
 * Messages never contain identifiers, pseudonyms, keys, API keys or passwords: they name the
 * field and the rule, and point at items by index.
 */

export type ErrorCode =
  // the caller's mistakes (4xx)
  | 'validation-failed'
  | 'malformed-json'
  /** An application/vnd.apache.arrow.stream body that is not a readable Arrow IPC stream (400). */
  | 'malformed-arrow'
  | 'unsupported-media-type'
  | 'payload-too-large'
  /** The request's header fields are larger than the server reads (431). */
  | 'headers-too-large'
  | 'unknown-context'
  | 'unsupported-mode'
  | 'unauthenticated'
  | 'forbidden'
  | 'not-found'
  | 'method-not-allowed'
  | 'reidentification-failed'
  /** Values whose data subject's erasure was filed, on a route whose answer has no room to withhold them one by one. */
  | 'subject-erased'
  | 'too-many-attempts'
  /** A subject named by FPE pseudonym (not authenticated) without `confirm`, the identifier's last characters or whole (422). */
  | 'confirmation-required'
  /** A subject named by pseudonym whose identifier does not match its `confirm`: a mistyped pseudonym or the wrong person (422). */
  | 'confirmation-mismatch'
  // another writer got there first (409)
  | 'ledger-conflict'
  /** A lift names a subject that is not suppressed in its context (409). */
  | 'not-suppressed'
  /** A lift names a subject whose erasure request has not finished (409): it would delete what is written after the lift. */
  | 'erasure-pending'
  /** An erasure request's deadline cannot be extended: it was extended already (once per request) or is verified (409). */
  | 'extension-refused'
  // the platform's state (5xx)
  | 'keyring-unavailable'
  /** The API key registry cannot be read or is damaged: no caller can be authenticated. */
  | 'api-keys-unavailable'
  /** A secret document store (local file, Secrets Manager) outside the keyring and the API key registry. */
  | 'store-unavailable'
  | 'directory-unavailable'
  | 'ledger-unavailable'
  /** The service could not start because its configuration is invalid (a Lambda answers this until redeployed). */
  | 'config-invalid'
  | 'internal'
  // not for HTTP: start-up, CLI and programming errors
  | 'invalid-config'
  | 'keyring-error'
  /** The key inventory (which key versions each table holds, written by the re-keying job) cannot be read or breaks its contract. */
  | 'key-inventory-unavailable'
  | 'crypto-input'
  /** A document from the Python jobs (erasure certificate, progress) or to them does not match contracts/. */
  | 'contract-violation';

export class PlatformError extends Error {
  readonly code: ErrorCode;
  /** Item-level details a client can act on, such as `{ index, reason }`; never values. */
  readonly details: readonly ItemProblem[] | undefined;

  constructor(code: ErrorCode, message: string, details?: readonly ItemProblem[]) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.details = details;
  }
}

export interface ItemProblem {
  readonly index: number;
  readonly reason: string;
}

/** The request is wrong; the detail says which field and rule. */
export class RequestError extends PlatformError {}

export class AuthError extends PlatformError {}

/** Configuration that cannot work; the message names the key. Thrown at start-up only. */
export class ConfigError extends PlatformError {
  constructor(message: string) {
    super('invalid-config', message);
  }

  /** The setting at fault, when the message starts with its name (`PSEUDO_PORT: …`): safe to log, unlike the rest. */
  get key(): string | undefined {
    return /^([A-Z][A-Z0-9_]*):/.exec(this.message)?.[1];
  }
}

export class KeyringError extends PlatformError {
  constructor(message: string, code: 'keyring-error' | 'keyring-unavailable' = 'keyring-error') {
    super(code, message);
  }
}

/** The key inventory cannot be read or does not match contracts/key-inventory.schema.json: not the keyring (`keys destroy`). */
export class KeyInventoryError extends PlatformError {
  constructor(message: string) {
    super('key-inventory-unavailable', message);
  }
}

/** The API key registry cannot be read or does not have the expected shape (503): not the keyring. */
export class ApiKeyRegistryError extends PlatformError {
  constructor(message: string) {
    super('api-keys-unavailable', message);
  }
}

/**
 * A secret document (local 0600 file, Secrets Manager secret) cannot be read or written (503). The keyring
 * and the API key registry turn it into their own error, so the answer names what failed.
 */
export class DocumentStoreError extends PlatformError {
  constructor(message: string) {
    super('store-unavailable', message);
  }
}

/** A cryptographic primitive was called with inputs outside its contract (key length, domain size). */
export class CryptoInputError extends PlatformError {
  constructor(message: string) {
    super('crypto-input', message);
  }
}

/** Too many failed sign-ins for this user name or address (429). */
export class ThrottledError extends PlatformError {
  constructor(readonly retryAfterSeconds: number) {
    super('too-many-attempts', `too many failed sign-ins: try again in ${retryAfterSeconds} s`);
  }
}

/** The LDAP directory cannot be reached or refuses the service's own bind: not the person's fault (503). */
export class DirectoryError extends PlatformError {
  constructor(message: string) {
    super('directory-unavailable', message);
  }
}

/**
 * The erasure ledger's store cannot answer (unreachable, or throttled past its retries: 503), or refused a
 * write because another writer changed the same request first (409). Never an unchecked answer instead.
 */
export class LedgerError extends PlatformError {
  constructor(message: string, code: 'ledger-unavailable' | 'ledger-conflict' = 'ledger-unavailable') {
    super(code, message);
  }
}

/** Narrow an unknown thrown value to its message without leaking anything else. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : 'unknown error';
}
