/**
 * Kinesis PutRecords within the service limits, retrying only the records that failed.
 *
 * Limits (Kinesis API reference, PutRecords): at most 500 records per request; each record at most
 * 1 MiB counting its partition key and data; at most 5 MiB per request including partition keys;
 * partition keys of 1 to 256 characters. A record over its limit can never be sent: it is reported
 * as rejected, not retried.
 */

import { backoffDelayMs, sleep, type BackoffPolicy, type Sleep } from '../../api/retry/backoff.ts';

export const MAX_RECORDS_PER_REQUEST = 500;
export const MAX_RECORD_BYTES = 1024 * 1024;
export const MAX_REQUEST_BYTES = 5 * 1024 * 1024;
export const MAX_PARTITION_KEY_LENGTH = 256;

export interface Entry {
  readonly data: Uint8Array;
  readonly partitionKey: string;
}

/** What PutRecords answered for each entry, in order: an error code, or none when it was stored. */
export type PutRecordsCall = (entries: readonly Entry[]) => Promise<(string | undefined)[]>;

export function entryBytes(entry: Entry): number {
  return entry.data.length + Buffer.byteLength(entry.partitionKey, 'utf8');
}

/** Why an entry can never be sent, or undefined when it can. */
export function rejectReason(entry: Entry): string | undefined {
  if (entry.partitionKey.length === 0 || entry.partitionKey.length > MAX_PARTITION_KEY_LENGTH) return 'partition key must be 1-256 characters';
  if (entryBytes(entry) > MAX_RECORD_BYTES) return 'record is larger than 1 MiB with its partition key';
  return undefined;
}

/** Groups entries into requests of at most 500 records and 5 MiB, in order. */
export class Batcher {
  private entries: Entry[] = [];
  private bytes = 0;

  /** Adds an entry; returns the full batch it closed, if adding it would have overflowed one. */
  add(entry: Entry): Entry[] | undefined {
    const size = entryBytes(entry);
    let closed: Entry[] | undefined;
    if (this.entries.length === MAX_RECORDS_PER_REQUEST || this.bytes + size > MAX_REQUEST_BYTES) closed = this.flush();
    this.entries.push(entry);
    this.bytes += size;
    return closed;
  }

  flush(): Entry[] | undefined {
    if (this.entries.length === 0) return undefined;
    const batch = this.entries;
    this.entries = [];
    this.bytes = 0;
    return batch;
  }
}

/**
 * Error codes that no retry can fix: the credentials, the permissions, the stream or the request itself are
 * wrong. Either thrown for the whole request (the SDK error's name) or reported per record (the KMS codes).
 */
export const UNRETRYABLE_CODES: ReadonlySet<string> = new Set([
  // no usable credentials, or ones AWS does not accept
  'CredentialsProviderError',
  'UnrecognizedClientException',
  'InvalidClientTokenId',
  'InvalidSignatureException',
  'IncompleteSignatureException',
  'MissingAuthenticationToken',
  'ExpiredTokenException',
  // allowed to do this?
  'AccessDeniedException',
  // the stream
  'ResourceNotFoundException',
  'ResourceInUseException',
  // the request
  'ValidationException',
  'InvalidArgumentException',
  // the stream's KMS key (per record)
  'KMSAccessDeniedException',
  'KMSDisabledException',
  'KMSInvalidStateException',
  'KMSNotFoundException',
  'KMSOptInRequired',
]);

/** PutRecords failed in a way retrying cannot fix; what the batch had stored by then is counted. */
export class UnretryableError extends Error {
  constructor(
    readonly code: string,
    readonly sent: number,
    readonly failed: number,
  ) {
    super(`PutRecords failed with ${code}, which retrying cannot fix`);
    this.name = 'UnretryableError';
  }
}

export interface RetryOptions extends BackoffPolicy {
  readonly maxAttempts: number;
  readonly sleep?: Sleep;
}

export interface BatchOutcome {
  readonly sent: number;
  /** Record retries (a record sent twice counts once here). */
  readonly retried: number;
  readonly failed: number;
  /** Error codes of the records that still failed after the last attempt. */
  readonly failureCodes: Record<string, number>;
}

/**
 * Sends one batch, then re-sends only the records whose result had an error code, with exponential
 * backoff and full jitter (the shared schedule in api/retry/backoff.ts; only part of a batch is re-sent, so
 * this loop uses the schedule rather than `retry`), until all are stored or the attempts run out. A call that throws (network,
 * throttling of the whole request) counts as every record of that attempt failing. An unretryable code (see
 * UNRETRYABLE_CODES), thrown or per record, ends at once with UnretryableError: re-sending would only fail again.
 */
export async function sendBatch(put: PutRecordsCall, batch: readonly Entry[], options: RetryOptions): Promise<BatchOutcome> {
  const wait = options.sleep ?? sleep;
  let pending = [...batch];
  let retried = 0;
  let codes: string[] = [];
  for (let attempt = 0; attempt < options.maxAttempts && pending.length > 0; attempt++) {
    if (attempt > 0) {
      retried += pending.length;
      await wait(backoffDelayMs(attempt, options));
    }
    let results: (string | undefined)[];
    try {
      results = await put(pending);
    } catch (error) {
      const code = error instanceof Error ? error.name : 'RequestFailed';
      results = pending.map(() => code);
    }
    codes = [];
    const next: Entry[] = [];
    pending.forEach((entry, i) => {
      const code = results[i];
      if (code) {
        next.push(entry);
        codes.push(code);
      }
    });
    pending = next;
    const unretryable = codes.find((code) => UNRETRYABLE_CODES.has(code));
    if (unretryable !== undefined) throw new UnretryableError(unretryable, batch.length - pending.length, pending.length);
  }
  const failureCodes: Record<string, number> = {};
  for (const code of codes) failureCodes[code] = (failureCodes[code] ?? 0) + 1;
  return { sent: batch.length - pending.length, retried, failed: pending.length, failureCodes };
}
