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
 * A live progress line goes to stderr, a JSON summary (recordsSent, recordResends, recordsFailed, ...) to stdout.
 * Errors that retrying cannot fix (no credentials, no such stream, access denied, an invalid request) stop the
 * producer at once with a hint on stderr and exit 2. Ctrl-C stops reading, finishes the batch in flight, prints
 * the summary and exits 130; a second Ctrl-C exits at once. Exit 1 when any record failed or was rejected.
 */
import { existsSync } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { parseArgs } from 'node:util';
import { KinesisClient, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { PutRecordsCall } from './putRecords.ts';
import { generated, lines, produce } from './produce.ts';

const USAGE = `usage: npm run produce -- --stream NAME (--file PATH | --stdin | --generate N) [options]

Sends JSON records, one per line, to a Kinesis data stream with PutRecords.

records from (exactly one):
  --file PATH             the lines of a file (JSON lines; other lines are sent too)
  --stdin                 the lines of standard input
  --generate N            N records of the batch dataset's shape (dept_id, vin, example_ts, producedAt)

options:
  --partition-key FIELD   the partition key from this field of each JSON record (random otherwise, and
                          for lines without the field)
  --rate N                at most N records per second (default: as fast as the stream takes them)
  --max-attempts N        PutRecords attempts per record (default 8); only failed records are re-sent
  --endpoint URL          a local endpoint such as moto's (AWS's default credential chain otherwise)
  --region R              default AWS_REGION, else eu-west-1
  -h, --help              this text

A progress line goes to stderr, a JSON summary to stdout. Ctrl-C finishes the batch in flight and exits 130.

exit status: 0 every record stored, 1 some records failed or were rejected, 2 usage, configuration, or an
error retrying cannot fix (no credentials, no such stream, access denied, an invalid request)

examples:
  npm run produce -- --stream vehicles --generate 100000 --rate 5000
  npm run produce -- --stream vehicles --file events.jsonl --partition-key vin
  AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \\
    npm run produce -- --stream vehicles --generate 1000 --endpoint http://127.0.0.1:5000`;

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  stream: { type: 'string' },
  file: { type: 'string' },
  stdin: { type: 'boolean' },
  generate: { type: 'string' },
  'partition-key': { type: 'string' },
  rate: { type: 'string' },
  'max-attempts': { type: 'string', default: '8' },
  endpoint: { type: 'string' },
  region: { type: 'string' },
} as const;

class UsageError extends Error {}

/** What to do about an error retrying cannot fix, for a person at a terminal. */
function hintFor(code: string, stream: string, region: string, endpoint: string | undefined): string {
  const at = endpoint ? ` --endpoint-url ${endpoint}` : '';
  if (code === 'ResourceNotFoundException') {
    return `the stream ${stream} does not exist in ${region}${endpoint ? ` at ${endpoint}` : ''}: create it first: aws kinesis create-stream --stream-name ${stream} --shard-count 1 --region ${region}${at}`;
  }
  if (code === 'ResourceInUseException') return `the stream ${stream} is being created, updated or deleted: wait until it is ACTIVE (aws kinesis describe-stream-summary --stream-name ${stream}${at})`;
  if (code === 'CredentialsProviderError' || code === 'UnrecognizedClientException' || code === 'InvalidClientTokenId' || code === 'InvalidSignatureException' || code === 'IncompleteSignatureException' || code === 'MissingAuthenticationToken' || code === 'ExpiredTokenException') {
    return `no usable AWS credentials (${code}): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (after aws sso login if it uses SSO); for a local endpoint such as moto any values do (AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test)`;
  }
  if (code === 'AccessDeniedException') return `the credentials may not write to ${stream}: allow kinesis:PutRecords on the stream (and kms:GenerateDataKey on its key when it is encrypted)`;
  if (code.startsWith('KMS')) return `the stream's KMS key cannot be used (${code}): check that the key is enabled and that the credentials may use it (kms:GenerateDataKey)`;
  return `Kinesis refused the request as invalid (${code}): check --stream (1-128 of A-Z a-z 0-9 _ . -) and --region`;
}

async function main(argv: readonly string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS });
  } catch (error) {
    // parseArgs names the option it could not read, never its value.
    throw new UsageError(error instanceof Error ? error.message : 'the arguments cannot be read');
  }
  const { values } = parsed;
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
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
  if (values.file !== undefined && !existsSync(values.file)) throw new UsageError(`--file: no such file: ${values.file}`);
  if (values.endpoint !== undefined && !URL.canParse(values.endpoint)) throw new UsageError('--endpoint must be a URL such as http://127.0.0.1:5000');
  // HTTP/1.1 with keep-alive: the SDK's Kinesis default is HTTP/2, needed only for SubscribeToShard;
  // PutRecords works over both, and local endpoints such as moto speak HTTP/1.1 only.
  const region = values.region ?? process.env.AWS_REGION ?? 'eu-west-1';
  const client = new KinesisClient({
    region,
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
      const line = `sent ${p.recordsSent}, re-sent ${p.recordResends}, failed ${p.recordsFailed}, ${p.recordsPerSecond}/s`;
      process.stderr.write(process.stderr.isTTY ? `\r${line}` : `${line}\n`);
    },
  });
  if (process.stderr.isTTY) process.stderr.write('\n');
  process.stdout.write(JSON.stringify(summary) + '\n');
  if (summary.stoppedBy !== null) {
    process.stderr.write(`stopped: ${hintFor(summary.stoppedBy, stream, region, values.endpoint)}\n`);
    return 2;
  }
  if (summary.interrupted) return 130;
  return summary.recordsFailed > 0 || summary.recordsRejected > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : 'failed'}\n`);
    if (error instanceof UsageError) process.stderr.write(`${USAGE}\n`);
    process.exit(error instanceof UsageError ? 2 : 1);
  },
);
