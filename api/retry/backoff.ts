/**
 * The one retry/backoff schedule of the TypeScript code: exponential growth from a base delay, capped,
 * with full jitter by default (AWS Architecture Blog, "Exponential Backoff And Jitter": a delay drawn
 * uniformly from [0, min(cap, base * 2^(retry-1))] spreads competing clients best).
 *
 * Two ways in:
 * - `retry(operation, options)` runs an operation until it succeeds, its error is not retryable, the
 *   attempts run out or the signal aborts; the last error is rethrown as it was (typed errors keep
 *   their codes for the caller to map, e.g. to `ledger-unavailable`).
 * - `backoffDelayMs(retry, policy)` is the schedule alone, for loops that retry part of a batch
 *   (Kinesis PutRecords), poll (EMR DescribeStep) or wait across runs (the erasure worker).
 *
 * Tests inject `sleep` and `random`, so no test waits on or measures the wall clock.
 */

/** Waits `ms` milliseconds; rejects with the signal's reason when it aborts first. */
export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

export interface BackoffPolicy {
  /** Delay ceiling before the first retry; doubled at each later retry. */
  readonly baseDelayMs: number;
  /** No delay exceeds this. */
  readonly maxDelayMs: number;
  /** `full`: uniform in [0, ceiling] (the default); `none`: exactly the ceiling (polling, schedules). */
  readonly jitter?: 'full' | 'none';
}

export interface RetryOptions extends BackoffPolicy {
  /** Attempts in all, the first included (1 means no retry). */
  readonly maxAttempts: number;
  /** Whether an error is worth another attempt; every error is, unless this says otherwise. */
  readonly isRetryable?: (error: unknown) => boolean;
  /** Called before each wait, e.g. to count retries in a metric (never to log the error's values). */
  readonly onRetry?: (event: RetryEvent) => void;
  readonly signal?: AbortSignal;
  readonly sleep?: Sleep;
  /** Uniform in [0, 1); Math.random unless a test fixes it. */
  readonly random?: () => number;
}

export interface RetryEvent {
  readonly error: unknown;
  /** The attempt that just failed, from 1. */
  readonly attempt: number;
  readonly delayMs: number;
}

/**
 * The delay before retry number `retry` (1 = the wait after the first failed attempt).
 * Retry 0 or less waits nothing.
 */
export function backoffDelayMs(retry: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  if (retry < 1) return 0;
  // 2 ** 1023 is the largest finite power; past the cap the exponent no longer matters.
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.min(retry - 1, 1023));
  return policy.jitter === 'none' ? ceiling : random() * ceiling;
}

/** setTimeout as a promise that an AbortSignal cancels. */
export const sleep: Sleep = (ms, signal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortReason(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/**
 * Runs `operation` (given the attempt number, from 1) until it resolves. An error that is not retryable,
 * or the last attempt's error, is rethrown unchanged; an abort rejects with the signal's reason.
 */
export async function retry<T>(operation: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const wait = options.sleep ?? sleep;
  const attempts = Math.max(1, Math.floor(options.maxAttempts));
  for (let attempt = 1; ; attempt++) {
    if (options.signal?.aborted) throw abortReason(options.signal);
    try {
      return await operation(attempt);
    } catch (error) {
      if (attempt >= attempts || (options.isRetryable && !options.isRetryable(error))) throw error;
      const delayMs = backoffDelayMs(attempt, options, options.random);
      options.onRetry?.({ error, attempt, delayMs });
      await wait(delayMs, options.signal);
    }
  }
}

/** The signal's reason when it is an Error (abort() without one gives a DOMException named AbortError). */
function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DOMException('The operation was aborted', 'AbortError');
}
