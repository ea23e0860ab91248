/**
 * The producer: JSON records from a file, stdin or a generator to a Kinesis data stream, in PutRecords
 * batches within the service limits, at a given rate, with a running summary. The command line and its
 * options are in main.ts (`npm run produce`); tests drive `produce` with their own PutRecords call.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { Batcher, rejectReason, sendBatch, UnretryableError, type Entry, type PutRecordsCall } from './putRecords.ts';

/** Records of the batch dataset's shape (dept_id, vin from 10,000, example_ts), with the time they were made. */
export function* generated(count: number): Generator<string> {
  const start = Date.parse('2026-01-01T00:00:00Z');
  for (let i = 0; i < count; i++) {
    const vin = `VIN${String((i * 2654435761) % 10_000).padStart(14, '0')}`;
    yield JSON.stringify({ dept_id: (i * 40503) % 50, vin, example_ts: new Date(start + i * 1000).toISOString(), producedAt: new Date().toISOString() });
  }
}

export async function* lines(path: string | undefined): AsyncGenerator<string> {
  const input = createInterface({ input: path ? createReadStream(path) : process.stdin, crlfDelay: Infinity });
  for await (const line of input) if (line.trim() !== '') yield line;
}

function partitionKeyOf(line: string, field: string | undefined): { key: string; fromField: boolean } {
  if (field) {
    try {
      const value: unknown = (JSON.parse(line) as Record<string, unknown>)[field];
      if ((typeof value === 'string' || typeof value === 'number') && String(value).length > 0) return { key: String(value).slice(0, 256), fromField: true };
    } catch {
      // not JSON: the consumer sends it to its dead-letter table; any shard will do
    }
  }
  return { key: randomUUID(), fromField: false };
}

export interface ProduceOptions {
  readonly records: AsyncIterable<string> | Iterable<string>;
  readonly put: PutRecordsCall;
  readonly partitionKeyField?: string | undefined;
  readonly ratePerSecond?: number | undefined;
  readonly maxAttempts: number;
  readonly shouldStop?: () => boolean;
  readonly onProgress?: (progress: Summary) => void;
}

/** The producer's summary (printed as JSON): each count says what it counts. */
export interface Summary {
  /** Records PutRecords stored. */
  recordsSent: number;
  /** Re-sends of records PutRecords reported as failed (a record sent three times adds two). */
  recordResends: number;
  /** Records not stored when their attempts ran out or the producer stopped (by code in failureCodes). */
  recordsFailed: number;
  /** Records never sent because they exceed a PutRecords limit (1 MiB with the key, key of 1-256 characters). */
  recordsRejected: number;
  /** Records given a random partition key: every record without --partition-key, else those lacking the field. */
  recordsWithRandomPartitionKey: number;
  interrupted: boolean;
  /** The error code that stopped the producer because retrying could not fix it (credentials, stream, request). */
  stoppedBy: string | null;
  seconds: number;
  recordsPerSecond: number;
  failureCodes: Record<string, number>;
}

/** The producer loop, independent of Kinesis and the terminal (tests drive it with their own `put`). */
export async function produce(options: ProduceOptions): Promise<Summary> {
  const started = Date.now();
  const summary: Summary = {
    recordsSent: 0,
    recordResends: 0,
    recordsFailed: 0,
    recordsRejected: 0,
    recordsWithRandomPartitionKey: 0,
    interrupted: false,
    stoppedBy: null,
    seconds: 0,
    recordsPerSecond: 0,
    failureCodes: {},
  };
  const batcher = new Batcher();
  let read = 0;
  const count = (code: string, records: number): void => {
    summary.failureCodes[code] = (summary.failureCodes[code] ?? 0) + records;
  };
  const send = async (batch: Entry[] | undefined): Promise<void> => {
    if (!batch) return;
    if (summary.stoppedBy !== null) {
      // Read and batched after the stop, never sent: failed for the same reason.
      summary.recordsFailed += batch.length;
      count(summary.stoppedBy, batch.length);
      return;
    }
    try {
      const outcome = await sendBatch(options.put, batch, { maxAttempts: options.maxAttempts, baseDelayMs: 100, maxDelayMs: 5000 });
      summary.recordsSent += outcome.sent;
      summary.recordResends += outcome.retried;
      summary.recordsFailed += outcome.failed;
      for (const [code, n] of Object.entries(outcome.failureCodes)) count(code, n);
    } catch (error) {
      if (!(error instanceof UnretryableError)) throw error;
      // Every later batch would fail the same way: stop here rather than spend the attempts on each.
      summary.recordsSent += error.sent;
      summary.recordsFailed += error.failed;
      count(error.code, error.failed);
      summary.stoppedBy = error.code;
    }
    options.onProgress?.(finish(summary, started));
  };
  for await (const line of options.records) {
    if (summary.stoppedBy !== null) break;
    if (options.shouldStop?.()) {
      summary.interrupted = true;
      break;
    }
    if (options.ratePerSecond) {
      const due = started + (read / options.ratePerSecond) * 1000;
      const wait = due - Date.now();
      if (wait > 5) {
        // Send what is batched before waiting, so a slow rate does not hold records back.
        await send(batcher.flush());
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
    read++;
    const { key, fromField } = partitionKeyOf(line, options.partitionKeyField);
    if (!fromField) summary.recordsWithRandomPartitionKey++;
    const entry: Entry = { data: Buffer.from(line, 'utf8'), partitionKey: key };
    if (rejectReason(entry)) {
      summary.recordsRejected++;
      continue;
    }
    await send(batcher.add(entry));
  }
  await send(batcher.flush());
  return finish(summary, started);
}

function finish(summary: Summary, started: number): Summary {
  summary.seconds = Math.round((Date.now() - started) / 100) / 10;
  summary.recordsPerSecond = summary.seconds > 0 ? Math.round(summary.recordsSent / summary.seconds) : summary.recordsSent;
  return { ...summary, failureCodes: { ...summary.failureCodes } };
}
