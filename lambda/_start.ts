/**
 * A failed start of either Lambda function (the API handler, the erasure step function), said without values.
 *
 * The original error's message is never reused: it can hold a file path, a secret's id or a setting's value. What
 * is logged is one JSON line on stderr (CloudWatch) with the error's class and code and, for a configuration error,
 * the setting's name; what is answered or thrown instead is a new error naming the cause by its code.
 */
import { ConfigError, PlatformError } from '../api/errors.ts';
import { statusOf } from '../api/http/problem.ts';

/** One JSON line on stderr: what failed, by class and code, never a value or a path. */
export function logStartFailure(what: string, error: unknown): void {
  const line = {
    level: 'error',
    msg: `${what} could not start`,
    errorClass: error instanceof Error ? error.name : typeof error,
    code: error instanceof PlatformError ? error.code : undefined,
    key: error instanceof ConfigError ? error.key : undefined,
  };
  console.error(JSON.stringify(line));
}

/**
 * The value-free error a failed start stands for, naming its real cause: `config-invalid` (with the setting's name),
 * `ledger-unavailable`, `keyring-unavailable` and the other "a dependency is down" codes (503); anything else is our
 * bug, `internal` (a generic 500; the log line has the class). Its message says where to look, not what was wrong.
 */
export function startFailure(error: unknown): PlatformError {
  if (error instanceof ConfigError) return new PlatformError('config-invalid', `the service configuration is not valid${error.key ? ` (${error.key})` : ''}: see the function log`);
  if (error instanceof PlatformError && error.code === 'ledger-unavailable') return new PlatformError('ledger-unavailable', 'the erasure ledger could not be opened: see the function log');
  if (error instanceof PlatformError && statusOf(error.code) === 503) return new PlatformError(error.code, 'the service could not start: see the function log');
  return new PlatformError('internal', 'the service could not start: see the function log');
}
