/**
 * `npm run produce -- --stream NAME (--file PATH | --stdin | --generate N) [options]`: the producer CLI.
 *
 *   --partition-key FIELD   take the partition key from this field of each JSON record (random otherwise,
 *                           and for lines that are not JSON objects with that field)
 *   --rate N                at most N records per second (default: as fast as the stream takes them)
 *   --max-attempts N        PutRecords attempts per record (default 8); only failed records are re-sent
 *   --endpoint URL          a local endpoint such as moto's (AWS's default credential chain otherwise)
 *   --region R              default AWS_REGION or eu-west-1
 *
 * A live progress line goes to stderr, a JSON summary (sent, retried, failed, rejected) to stdout.
 * Ctrl-C stops reading, finishes the batch in flight, prints the summary and exits 130; a second Ctrl-C
 * exits at once. Exit 1 when any record failed or was rejected.
 */
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { parseArgs } from 'node:util';
import { KinesisClient, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { PutRecordsCall } from './putRecords.ts';
import { generated, lines, produce } from './produce.ts';

const USAGE = 'usage: produce --stream NAME (--file PATH | --stdin | --generate N) [--partition-key FIELD] [--rate N] [--max-attempts N] [--endpoint URL] [--region R]';

class UsageError extends Error {}

async function main(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      stream: { type: 'string' },
      file: { type: 'string' },
      stdin: { type: 'boolean' },
      generate: { type: 'string' },
      'partition-key': { type: 'string' },
      rate: { type: 'string' },
      'max-attempts': { type: 'string', default: '8' },
      endpoint: { type: 'string' },
      region: { type: 'string' },
    },
  });
  if (!values.stream) throw new UsageError('--stream is required');
  const sources = [values.file !== undefined, values.stdin === true, values.generate !== undefined].filter(Boolean).length;
  if (sources !== 1) throw new UsageError('give exactly one of --file, --stdin, --generate');
  const number = (text: string | undefined, name: string): number | undefined => {
    if (text === undefined) return undefined;
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`${name} must be a whole number above 0`);
    return n;
  };
  const generate = number(values.generate, '--generate');
  // HTTP/1.1 with keep-alive: the SDK's Kinesis default is HTTP/2, needed only for SubscribeToShard;
  // PutRecords works over both, and local endpoints such as moto speak HTTP/1.1 only.
  const client = new KinesisClient({
    region: values.region ?? process.env.AWS_REGION ?? 'eu-west-1',
    ...(values.endpoint ? { endpoint: values.endpoint } : {}),
    maxAttempts: 1,
    requestHandler: new NodeHttpHandler({ httpAgent: new HttpAgent({ keepAlive: true }), httpsAgent: new HttpsAgent({ keepAlive: true }) }),
  });
  const stream = values.stream;
  const put: PutRecordsCall = async (entries) => {
    const response = await client.send(new PutRecordsCommand({ StreamName: stream, Records: entries.map((e) => ({ Data: e.data, PartitionKey: e.partitionKey })) }));
    return (response.Records ?? []).map((r) => r.ErrorCode);
  };
  let interrupts = 0;
  process.on('SIGINT', () => {
    interrupts++;
    if (interrupts > 1) process.exit(130);
    process.stderr.write('\nstopping after the batch in flight (Ctrl-C again to quit now)\n');
  });
  let lastProgress = 0;
  const summary = await produce({
    records: generate ? generated(generate) : lines(values.file),
    put,
    partitionKeyField: values['partition-key'],
    ratePerSecond: number(values.rate, '--rate'),
    maxAttempts: number(values['max-attempts'], '--max-attempts') ?? 8,
    shouldStop: () => interrupts > 0,
    onProgress: (p) => {
      if (Date.now() - lastProgress < 1000) return;
      lastProgress = Date.now();
      const line = `sent ${p.sent}, retried ${p.retried}, failed ${p.failed}, ${p.recordsPerSecond}/s`;
      process.stderr.write(process.stderr.isTTY ? `\r${line}` : `${line}\n`);
    },
  });
  if (process.stderr.isTTY) process.stderr.write('\n');
  process.stdout.write(JSON.stringify(summary) + '\n');
  if (summary.interrupted) return 130;
  return summary.failed > 0 || summary.rejected > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : 'failed'}\n`);
    if (error instanceof UsageError) process.stderr.write(`${USAGE}\n`);
    process.exit(error instanceof UsageError ? 2 : 1);
  },
);
