/**
 * The producer: JSON records from a file, stdin or a generator to a Kinesis data stream, in PutRecords
 * batches within the service limits, at a given rate, with a running summary. The command line and its
 * options are in main.ts (`npm run produce`); tests drive `produce` with their own PutRecords call.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { Batcher, rejectReason, sendBatch, type Entry, type PutRecordsCall } from './putRecords.ts';

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
  return { key: randomUUID(), fromField: field === undefined };
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

export interface Summary {
  sent: number;
  retried: number;
  failed: number;
  rejected: number;
  randomKeys: number;
  interrupted: boolean;
  seconds: number;
  recordsPerSecond: number;
  failureCodes: Record<string, number>;
}

/** The producer loop, independent of Kinesis and the terminal (tests drive it with their own `put`). */
export async function produce(options: ProduceOptions): Promise<Summary> {
  const started = Date.now();
  const summary: Summary = { sent: 0, retried: 0, failed: 0, rejected: 0, randomKeys: 0, interrupted: false, seconds: 0, recordsPerSecond: 0, failureCodes: {} };
  const batcher = new Batcher();
  let read = 0;
  const send = async (batch: Entry[] | undefined): Promise<void> => {
    if (!batch) return;
    const outcome = await sendBatch(options.put, batch, { maxAttempts: options.maxAttempts, baseDelayMs: 100, maxDelayMs: 5000 });
    summary.sent += outcome.sent;
    summary.retried += outcome.retried;
    summary.failed += outcome.failed;
    for (const [code, n] of Object.entries(outcome.failureCodes)) summary.failureCodes[code] = (summary.failureCodes[code] ?? 0) + n;
    options.onProgress?.(finish(summary, started));
  };
  for await (const line of options.records) {
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
    if (!fromField) summary.randomKeys++;
    const entry: Entry = { data: Buffer.from(line, 'utf8'), partitionKey: key };
    if (rejectReason(entry)) {
      summary.rejected++;
      continue;
    }
    await send(batcher.add(entry));
  }
  await send(batcher.flush());
  return finish(summary, started);
}

function finish(summary: Summary, started: number): Summary {
  summary.seconds = Math.round((Date.now() - started) / 100) / 10;
  summary.recordsPerSecond = summary.seconds > 0 ? Math.round(summary.sent / summary.seconds) : summary.sent;
  return { ...summary, failureCodes: { ...summary.failureCodes } };
}
