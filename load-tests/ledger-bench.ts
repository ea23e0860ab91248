/**
 * `npm run bench:ledger`: what the suppression lookup costs. Times `erasedPseudonyms(context)`, the call that
 * feeds pseudonymize's suppression and reidentify's withholding, on the SQLite store (a local file) and on the
 * DynamoDB store against moto's server on loopback, with 0, 1,000 and 10,000 pseudonyms filed in the context.
 *
 * moto is a single Python process on this machine: its latency is not DynamoDB's (a Query on AWS from a Lambda in
 * the same region typically takes a few milliseconds), but it shows how the cost grows with the filed set and what
 * the call costs relative to the SQLite store, whose answer is cached until another connection commits.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DynamoErasureLedger, ensureTable } from '../api/erasure/dynamoLedger.ts';
import type { ErasureLedger } from '../api/erasure/ledger.ts';
import { SqliteErasureLedger } from '../api/erasure/sqliteLedger.ts';
import { MAX_SUBJECTS_PER_REQUEST } from '../api/erasure/requests.ts';
import { startMoto, TEST_REGION } from '../test/support/moto.ts';
import { machineHeader, table } from './machine.ts';
import { parseCli, type Help } from './cli.ts';

const HELP: Help = {
  usage: 'npm run bench:ledger',
  measures: "What the suppression lookup costs: erasedPseudonyms(context) on the SQLite store and on the DynamoDB store\n(moto on loopback), with 0, 1,000 and 10,000 pseudonyms filed in the context.",
  duration: 'about 1 to 2 minutes (starting moto and filing 11,000 pseudonyms per store take most of it)',
  environment: [['BENCH_LOOKUPS', 'timed lookups per store and size (default 200)']],
  examples: ['npm run bench:ledger', 'BENCH_LOOKUPS=50 npm run bench:ledger'],
};
parseCli(HELP, { options: {} });

const SIZES = [0, 1_000, 10_000];
const LOOKUPS = Number(process.env.BENCH_LOOKUPS ?? 200);

/** A deterministic pseudonym's shape: key version prefix and base64url of tag + ciphertext (~60 characters). */
const pseudonym = (): string => `s1.${randomBytes(42).toString('base64url')}`;

async function fill(ledger: ErasureLedger, count: number): Promise<void> {
  for (let filed = 0, n = 0; filed < count; n++) {
    const size = Math.min(MAX_SUBJECTS_PER_REQUEST, count - filed);
    const subjects = Array.from({ length: size }, () => ({ context: 'email', pseudonyms: [pseudonym()] }));
    await ledger.create(
      { id: `er-bench-${n}`, reference: `BENCH-${n}`, reason: 'gdpr-art17-1a', filedBy: 'person:bench', subjects, tables: [] },
      { actor: 'person:bench', action: 'erasure.filed', requestId: `er-bench-${n}`, outcome: 'received' },
    );
    filed += size;
  }
}

async function time(ledger: ErasureLedger, expected: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < LOOKUPS + 10; i++) {
    const started = performance.now();
    const erased = await ledger.erasedPseudonyms('email');
    const elapsed = performance.now() - started;
    if (erased.size !== expected) throw new Error(`expected ${expected} erased pseudonyms, got ${erased.size}`);
    if (i >= 10) samples.push(elapsed); // the first ten warm up the JIT and connections
  }
  return samples.sort((a, b) => a - b);
}

const quantile = (sorted: readonly number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
const ms = (value: number): string => value.toFixed(value < 1 ? 3 : 1);

const rows: (string | number)[][] = [];
const work = mkdtempSync(join(tmpdir(), 'ledger-bench-'));
const moto = await startMoto();
try {
  for (const size of SIZES) {
    const stores: [string, () => Promise<ErasureLedger>][] = [
      ['SQLite (file, cached per data_version)', () => Promise.resolve(new SqliteErasureLedger(join(work, `ledger-${size}.db`)))],
      [
        'DynamoDB on moto (consistent Query)',
        async () => {
          const tableName = `ledger-bench-${size}`;
          await ensureTable({ table: tableName, region: TEST_REGION, endpoint: moto.endpoint });
          return new DynamoErasureLedger({ table: tableName, region: TEST_REGION, endpoint: moto.endpoint });
        },
      ],
    ];
    for (const [name, open] of stores) {
      const ledger = await open();
      await fill(ledger, size);
      const samples = await time(ledger, size);
      const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
      rows.push([name, size, samples.length, ms(quantile(samples, 0.5)), ms(quantile(samples, 0.95)), ms(quantile(samples, 0.99)), ms(mean)]);
      await ledger.close();
      process.stderr.write(`${name}, ${size} filed: done\n`);
    }
  }
} finally {
  await moto.stop();
  rmSync(work, { recursive: true, force: true });
}

console.log(machineHeader('npm run bench:ledger'));
console.log(`lookup:  erasedPseudonyms('email'), ${LOOKUPS} timed calls after 10 warm-up calls, one at a time\n`);
console.log(table(['store', 'pseudonyms filed in the context', 'lookups', 'p50 ms', 'p95 ms', 'p99 ms', 'mean ms'], rows));
