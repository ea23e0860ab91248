/**
 * Errors as RFC 9457 problem details (application/problem+json). The `type` is a stable URN per
 * error code; `detail` comes from our own typed errors, which never carry values. Anything
 * unexpected becomes a generic 500 with no detail.
 */
import { PlatformError, ThrottledError, type ErrorCode } from '../errors.ts';
import type { CoreResponse } from './types.ts';

const PROBLEMS: Record<ErrorCode, { status: number; title: string }> = {
  'validation-failed': { status: 400, title: 'The request is not valid' },
  'malformed-json': { status: 400, title: 'The body is not valid JSON' },
  'malformed-arrow': { status: 400, title: 'The body is not a valid Arrow IPC stream' },
  'unknown-context': { status: 400, title: 'Unknown context' },
  'unsupported-mode': { status: 400, title: 'Mode not available for this context' },
  unauthenticated: { status: 401, title: 'Authentication required' },
  forbidden: { status: 403, title: 'Not allowed' },
  'not-found': { status: 404, title: 'Not found' },
  'method-not-allowed': { status: 405, title: 'Method not allowed' },
  'payload-too-large': { status: 413, title: 'The body is too large' },
  'headers-too-large': { status: 431, title: 'The request header fields are too large' },
  'unsupported-media-type': { status: 415, title: 'Unsupported content type' },
  'reidentification-failed': { status: 422, title: 'Some pseudonyms could not be reidentified' },
  'subject-erased': { status: 422, title: 'Some values belong to subjects whose erasure was filed' },
  'confirmation-required': { status: 422, title: 'A subject named by FPE pseudonym needs a confirmation' },
  'confirmation-mismatch': { status: 422, title: 'A subject does not match its confirmation' },
  'too-many-attempts': { status: 429, title: 'Too many failed sign-in attempts' },
  'ledger-conflict': { status: 409, title: 'The erasure request was changed by another writer' },
  'not-suppressed': { status: 409, title: 'Some subjects are not suppressed' },
  'erasure-pending': { status: 409, title: 'Some subjects have an erasure that has not finished' },
  'extension-refused': { status: 409, title: "The erasure request's deadline cannot be extended" },
  'directory-unavailable': { status: 503, title: 'The directory is not available' },
  'keyring-unavailable': { status: 503, title: 'Keys are not available' },
  'api-keys-unavailable': { status: 503, title: 'API keys cannot be checked' },
  'store-unavailable': { status: 503, title: 'A secret store is not available' },
  'ledger-unavailable': { status: 503, title: 'The erasure ledger is not available' },
  'config-invalid': { status: 503, title: 'The service configuration is not valid' },
  internal: { status: 500, title: 'Internal error' },
  'invalid-config': { status: 500, title: 'Internal error' },
  'keyring-error': { status: 500, title: 'Internal error' },
  'key-inventory-unavailable': { status: 500, title: 'Internal error' },
  'crypto-input': { status: 500, title: 'Internal error' },
  'contract-violation': { status: 500, title: 'Internal error' },
};

export const PROBLEM_TYPE_PREFIX = 'urn:pseudonymization:problem:';

/** The HTTP status an error code answers with. */
export function statusOf(code: ErrorCode): number {
  return PROBLEMS[code].status;
}

export function problemType(code: ErrorCode): string {
  return PROBLEM_TYPE_PREFIX + code;
}

export function problemResponse(error: unknown, requestId: string): CoreResponse & { readonly body: string } {
  const known = error instanceof PlatformError ? error : undefined;
  let code: ErrorCode = known?.code ?? 'internal';
  const { status, title } = PROBLEMS[code];
  if (status === 500) code = 'internal';
  const body: Record<string, unknown> = { type: problemType(code), title, status };
  if (known && status !== 500) body.detail = known.message;
  if (known?.details && status !== 500) body.errors = known.details;
  body.requestId = requestId;
  const headers: Record<string, string> = { 'content-type': 'application/problem+json; charset=utf-8' };
  if (status === 401) headers['www-authenticate'] = 'ApiKey header="x-api-key", Bearer realm="pseudonymization-api"';
  if (status === 503) headers['retry-after'] = '5';
  if (error instanceof ThrottledError) headers['retry-after'] = String(error.retryAfterSeconds);
  return { status, headers, body: JSON.stringify(body) };
}
