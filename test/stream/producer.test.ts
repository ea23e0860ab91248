/**
 * The Kinesis producer. Batching and retry-only-the-failed-records run against a scripted PutRecords
 * call, because moto's Kinesis never answers a per-record failure; everything else runs against moto's
 * Kinesis over HTTP: records land in the stream, partition keys, rate, a missing stream, Ctrl-C.
 * Access denied, an invalid request and a KMS refusal run against a Kinesis endpoint scripted in this file,
 * answering as AWS does (JSON 1.1 errors), because moto answers none of them on PutRecords: it takes an
 * invalid stream name for a missing stream, refuses a record over 1 MiB only as the producer already does
 * before sending, and answers an IAM denial with an XML body Kinesis never sends.
 */
import { execFile, spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CreateStreamCommand, GetRecordsCommand, GetShardIteratorCommand, KinesisClient, ListShardsCommand, waitUntilStreamExists } from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Batcher, MAX_RECORD_BYTES, rejectReason, sendBatch, UnretryableError, type Entry } from '../../stream-consumer/producer/putRecords.ts';
import { startMoto, TEST_REGION, type Moto } from '../support/moto.ts';

const entry = (bytes: number, key = 'k'): Entry => ({ data: new Uint8Array(bytes), partitionKey: key });

describe('PutRecords batching and retries', () => {
  it('closes batches at 500 records and at 5 MiB, and rejects records over 1 MiB', () => {
    const batcher = new Batcher();
    const sizes: number[] = [];
    for (let i = 0; i < 1200; i++) {
      const closed = batcher.add(entry(100));
      if (closed) sizes.push(closed.length);
    }
    sizes.push(batcher.flush()!.length);
    expect(sizes).toEqual([500, 500, 200]);
    const big = new Batcher();
    const bigSizes: number[] = [];
    for (let i = 0; i < 12; i++) {
      const closed = big.add(entry(MAX_RECORD_BYTES - 1));
      if (closed) bigSizes.push(closed.length);
    }
    expect(bigSizes).toEqual([5, 5]);
    expect(rejectReason(entry(MAX_RECORD_BYTES))).toMatch(/larger than 1 MiB/);
    expect(rejectReason(entry(10, ''))).toMatch(/partition key/);
    expect(rejectReason(entry(10, 'x'.repeat(257)))).toMatch(/partition key/);
  });

  it('re-sends only the records that failed, with backoff, until they are stored', async () => {
    const calls: number[][] = [];
    const batch = Array.from({ length: 9 }, (_, i) => entry(i + 1));
    const outcome = await sendBatch(
      (entries) => {
        calls.push(entries.map((e) => e.data.length));
        return Promise.resolve(entries.map((e) => (calls.length === 1 && e.data.length % 3 === 0 ? 'ProvisionedThroughputExceededException' : undefined)));
      },
      batch,
      { maxAttempts: 5, baseDelayMs: 1, maxDelayMs: 2, sleep: () => Promise.resolve() },
    );
    expect(calls).toEqual([[1, 2, 3, 4, 5, 6, 7, 8, 9], [3, 6, 9]]);
    expect(outcome).toEqual({ sent: 9, retried: 3, failed: 0, failureCodes: {} });
  });

  it('gives up after the last attempt and reports why, counting a failed request as all its records failing', async () => {
    let attempt = 0;
    const outcome = await sendBatch(
      (entries) => {
        attempt++;
        if (attempt === 1) return Promise.reject(Object.assign(new Error('socket hang up'), { name: 'TimeoutError' }));
        return Promise.resolve(entries.map((e) => (e.data.length === 1 ? 'InternalFailure' : undefined)));
      },
      [entry(1), entry(2)],
      { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 2, sleep: () => Promise.resolve() },
    );
    expect(outcome).toEqual({ sent: 1, retried: 3, failed: 1, failureCodes: { InternalFailure: 1 } });
  });

  it.each([
    ['thrown for the request', 'ResourceNotFoundException', true],
    ['thrown for the request', 'CredentialsProviderError', true],
    ['per record', 'KMSAccessDeniedException', false],
  ])('stops at the first error retrying cannot fix (%s: %s), counting what was stored', async (_how, code, thrown) => {
    let calls = 0;
    const attempt = sendBatch(
      (entries) => {
        calls++;
        if (thrown) return Promise.reject(Object.assign(new Error('no'), { name: code }));
        return Promise.resolve(entries.map((e) => (e.data.length === 1 ? code : undefined)));
      },
      [entry(1), entry(2), entry(3)],
      { maxAttempts: 8, baseDelayMs: 1, maxDelayMs: 2, sleep: () => Promise.resolve() },
    );
    await expect(attempt).rejects.toBeInstanceOf(UnretryableError);
    await expect(attempt).rejects.toMatchObject({ code, sent: thrown ? 0 : 2, failed: thrown ? 3 : 1 });
    expect(calls).toBe(1);
  });
});

describe('the producer CLI against Kinesis (moto)', () => {
  let moto: Moto;
  let kinesis: KinesisClient;
  const work = mkdtempSync(join(tmpdir(), 'producer-'));
  beforeAll(async () => {
    moto = await startMoto();
    // moto speaks HTTP/1.1 only; the SDK's Kinesis default is HTTP/2.
    kinesis = new KinesisClient({ region: TEST_REGION, endpoint: moto.endpoint, requestHandler: new NodeHttpHandler() });
  });
  afterAll(async () => {
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- undefined when beforeAll failed
    await moto?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  async function createStream(name: string, shards = 2): Promise<void> {
    await kinesis.send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
    await waitUntilStreamExists({ client: kinesis, maxWaitTime: 30 }, { StreamName: name });
  }

  async function readAll(name: string): Promise<{ data: string; partitionKey: string }[]> {
    const out: { data: string; partitionKey: string }[] = [];
    const { Shards } = await kinesis.send(new ListShardsCommand({ StreamName: name }));
    for (const shard of Shards ?? []) {
      let iterator = (await kinesis.send(new GetShardIteratorCommand({ StreamName: name, ShardId: shard.ShardId!, ShardIteratorType: 'TRIM_HORIZON' }))).ShardIterator;
      for (;;) {
        const page = await kinesis.send(new GetRecordsCommand({ ShardIterator: iterator!, Limit: 10_000 }));
        for (const r of page.Records ?? []) out.push({ data: Buffer.from(r.Data!).toString('utf8'), partitionKey: r.PartitionKey! });
        if (!page.Records?.length || !page.NextShardIterator) break;
        iterator = page.NextShardIterator;
      }
    }
    return out;
  }

  const produce = async (...args: string[]) => {
    const result = await promisify(execFile)('node_modules/.bin/tsx', ['stream-consumer/producer/main.ts', '--endpoint', moto.endpoint, '--region', TEST_REGION, ...args], { env: { ...process.env, ...moto.env } }).catch((e: unknown) => e as { code: number; stdout: string; stderr: string });
    return { code: 'code' in result && typeof result.code === 'number' ? result.code : 0, summary: JSON.parse(result.stdout || '{}') as Record<string, unknown>, stderr: result.stderr };
  };

  it('sends generated records of the batch dataset shape, all of them landing in the stream', async () => {
    await createStream('vehicles');
    const { code, summary } = await produce('--stream', 'vehicles', '--generate', '1200');
    expect(code).toBe(0);
    expect(summary).toMatchObject({ recordsSent: 1200, recordsFailed: 0, recordsRejected: 0, recordsWithRandomPartitionKey: 1200, interrupted: false, stoppedBy: null });
    const records = await readAll('vehicles');
    expect(records).toHaveLength(1200);
    const first = JSON.parse(records[0]!.data) as Record<string, unknown>;
    expect(Object.keys(first).sort()).toEqual(['dept_id', 'example_ts', 'producedAt', 'vin']);
  });

  it('takes the partition key from a field, still sends lines that are not JSON, and keeps to the rate', async () => {
    await createStream('keyed');
    const file = join(work, 'records.jsonl');
    writeFileSync(file, [...Array.from({ length: 99 }, (_, i) => JSON.stringify({ vin: `V${i % 7}`, n: i })), 'not json at all'].join('\n') + '\n');
    const started = Date.now();
    const { code, summary } = await produce('--stream', 'keyed', '--file', file, '--partition-key', 'vin', '--rate', '200');
    expect(Date.now() - started).toBeGreaterThan(450);
    expect(code).toBe(0);
    // Only the line without the field (not JSON) gets a random key.
    expect(summary).toMatchObject({ recordsSent: 100, recordsWithRandomPartitionKey: 1 });
    const records = await readAll('keyed');
    expect(records.filter((r) => r.partitionKey.startsWith('V'))).toHaveLength(99);
    expect(records.map((r) => r.data)).toContain('not json at all');
  });

  it('stops at once on a missing stream, says how to create it and exits 2', async () => {
    const { code, summary, stderr } = await produce('--stream', 'no-such-stream', '--generate', '10');
    expect(code).toBe(2);
    expect(summary).toMatchObject({ recordsSent: 0, recordResends: 0, recordsFailed: 10, stoppedBy: 'ResourceNotFoundException', failureCodes: { ResourceNotFoundException: 10 } });
    expect(stderr).toContain(`create it first: aws kinesis create-stream --stream-name no-such-stream --shard-count 1 --region ${TEST_REGION} --endpoint-url ${moto.endpoint}`);
  });

  it('stops at once without credentials, says which variables to set and exits 2', async () => {
    // No credentials anywhere the SDK's default chain looks (and no instance metadata to wait for).
    const credentialSources = new Set(['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', 'AWS_WEB_IDENTITY_TOKEN_FILE']);
    const env: NodeJS.ProcessEnv = {
      ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !credentialSources.has(name))),
      AWS_SHARED_CREDENTIALS_FILE: join(work, 'none'),
      AWS_CONFIG_FILE: join(work, 'none'),
      AWS_EC2_METADATA_DISABLED: 'true',
    };
    const result = await promisify(execFile)('node_modules/.bin/tsx', ['stream-consumer/producer/main.ts', '--endpoint', moto.endpoint, '--region', TEST_REGION, '--stream', 'vehicles', '--generate', '1200'], { env }).catch(
      (e: unknown) => e as { code: number; stdout: string; stderr: string },
    );
    expect('code' in result ? result.code : 0).toBe(2);
    expect(JSON.parse(result.stdout) as Record<string, unknown>).toMatchObject({ recordsSent: 0, recordResends: 0, stoppedBy: 'CredentialsProviderError' });
    expect(result.stderr).toContain('set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY');
  });

  it('stops cleanly on Ctrl-C: what it reports as sent is exactly what is in the stream', async () => {
    await createStream('interrupted', 1);
    const child = spawn('node_modules/.bin/tsx', ['stream-consumer/producer/main.ts', '--endpoint', moto.endpoint, '--region', TEST_REGION, '--stream', 'interrupted', '--generate', '1000000', '--rate', '3000'], { env: { ...process.env, ...moto.env } });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    // Ctrl-C once records are going out: a fixed delay raced the start-up on a busy machine (tsx had not yet
    // reached the producer's SIGINT handler, so the signal killed it with no summary).
    await new Promise<void>((resolve) => {
      const sending = (chunk: Buffer): void => {
        if (!chunk.toString().includes('sent ')) return;
        child.stderr.off('data', sending);
        resolve();
      };
      child.stderr.on('data', sending);
    });
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(130);
    const summary = JSON.parse(stdout) as { recordsSent: number; interrupted: boolean };
    expect(summary.interrupted).toBe(true);
    expect(summary.recordsSent).toBeGreaterThan(0);
    expect(await readAll('interrupted')).toHaveLength(summary.recordsSent);
  });

  it('exits 2 with usage for missing, conflicting or unknown options and a missing file', async () => {
    expect((await produce('--generate', '10')).code).toBe(2);
    expect((await produce('--stream', 's', '--generate', '10', '--stdin')).code).toBe(2);
    expect((await produce('--stream', 's', '--generate', 'ten')).code).toBe(2);
    expect((await produce('--stream', 's', '--generate', '10', '--shards', '2')).code).toBe(2);
    const missing = await produce('--stream', 's', '--file', join(work, 'absent.jsonl'));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--file: no such file');
    expect(missing.stderr).toContain('usage: npm run produce');
  });

  it('prints its usage with examples for --help and exits 0', async () => {
    const result = await promisify(execFile)('node_modules/.bin/tsx', ['stream-consumer/producer/main.ts', '--help']);
    expect(result.stdout).toContain('usage: npm run produce -- --stream NAME');
    expect(result.stdout).toContain('examples:');
  });
});

describe('errors no retry can fix, from a Kinesis endpoint that answers as AWS does', () => {
  let server: Server;
  let endpoint: string;
  let answer: { type: string; message: string } = { type: '', message: '' };
  let requests = 0;
  beforeAll(async () => {
    server = createServer((request, response) => {
      requests++;
      request.resume();
      request.on('end', () => {
        response.writeHead(400, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': `${answer.type}:http://internal.amazon.com/coral/com.amazonaws.kinesis/` });
        response.end(JSON.stringify({ __type: answer.type, message: answer.message }));
      });
    });
    await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((closed) => server.close(closed));
  });

  it.each([
    ['ValidationException', "1 validation error detected: Value at 'streamName' failed to satisfy constraint", 'Kinesis refused the request as invalid (ValidationException): check --stream'],
    ['AccessDeniedException', 'User: arn:aws:iam::123456789012:user/writer is not authorized to perform: kinesis:PutRecords', 'the credentials may not write to vehicles: allow kinesis:PutRecords on the stream'],
    ['KMSDisabledException', 'The request was rejected because the specified CMK is not enabled.', "the stream's KMS key cannot be used (KMSDisabledException): check that the key is enabled"],
  ])('%s: one request, exit 2 with the hint on stderr, no retries', async (type, message, hint) => {
    answer = { type, message };
    requests = 0;
    const result = await promisify(execFile)('node_modules/.bin/tsx', ['stream-consumer/producer/main.ts', '--endpoint', endpoint, '--region', TEST_REGION, '--stream', 'vehicles', '--generate', '10'], {
      env: { ...process.env, AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing' },
    }).catch((e: unknown) => e as { code: number; stdout: string; stderr: string });
    expect('code' in result ? result.code : 0).toBe(2);
    expect(requests).toBe(1);
    expect(JSON.parse(result.stdout) as Record<string, unknown>).toMatchObject({ recordsSent: 0, recordResends: 0, recordsFailed: 10, stoppedBy: type, failureCodes: { [type]: 10 } });
    expect(result.stderr).toContain(`stopped: ${hint}`);
  });
});
