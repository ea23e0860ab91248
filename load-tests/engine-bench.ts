/**
 * `npm run bench:engine`: engine throughput on one core for 17-character identifiers.
 * Cache-miss path: the cache is off, every value is encrypted and encoded. Warm path: every value
 * is already in the cache. Both go through PseudonymEngine.pseudonymize, the production path; reidentify and
 * rewrap (version 1 pseudonyms to version 2, as a re-keying job asks) go through their engine methods.
 */
import { randomBytes } from 'node:crypto';
import { aessiv } from '@noble/ciphers/aes.js';
import { engineOf, keyringOf } from '../test/support/engine.ts';
import { machineHeader, table, vins } from './machine.ts';
import { parseCli, type Help } from './cli.ts';

const HELP: Help = {
  usage: 'npm run bench:engine',
  measures: 'Engine throughput on one core for 17-character VINs, batches of 900 and 10,000: the cache-miss path (every\nvalue encrypted and encoded) and the warm path (every value cached), through PseudonymEngine.pseudonymize; reidentify, and rewrap from version 1 to version 2.',
  duration: 'about 15 s (BENCH_SECONDS per row after a 0.5 s warm-up)',
  environment: [['BENCH_SECONDS', 'seconds per measured row (default 3)']],
  examples: ['npm run bench:engine', 'BENCH_SECONDS=10 npm run bench:engine'],
};
parseCli(HELP, { options: {} });

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);

function measure(run: () => number): number {
  for (let warm = performance.now(); performance.now() - warm < 500; ) run();
  let values = 0;
  const started = performance.now();
  while (performance.now() - started < SECONDS * 1000) values += run();
  return values / ((performance.now() - started) / 1000);
}

const root = randomBytes(64);
const rotatedRoot = randomBytes(64);
const pool = vins(200_000);
const rows: (string | number)[][] = [];
const fmt = (perSecond: number) => Math.round(perSecond).toLocaleString('en-US');

for (const batch of [900, 10_000]) {
  const batches = Array.from({ length: Math.floor(pool.length / batch) }, (_, i) => pool.slice(i * batch, (i + 1) * batch));
  let i = 0;
  const cold = engineOf(keyringOf([{ version: 1, state: 'active', root }]), 0);
  rows.push([`pseudonymize, cache miss (every value encrypted), batch ${batch}`, fmt(measure(() => cold.pseudonymize('vin', batches[i++ % batches.length]!, { deterministic: true }).pseudonyms.length))]);
  const warm = engineOf(keyringOf([{ version: 1, state: 'active', root }]), 1_000_000);
  warm.pseudonymize('vin', batches[0]!, { deterministic: true });
  rows.push([`pseudonymize, warm (cache hits), batch ${batch}`, fmt(measure(() => warm.pseudonymize('vin', batches[0]!, { deterministic: true }).pseudonyms.length))]);
  const pseudonyms = batches.slice(0, 10).map((b) => cold.pseudonymize('vin', b, { deterministic: true }).pseudonyms as string[]);
  rows.push([`reidentify, batch ${batch}`, fmt(measure(() => cold.reidentify('vin', pseudonyms[i++ % pseudonyms.length]!).values.length))]);
  // Rewrap s1 -> s2: the keyring after one rotation, version 1 decrypt-only, version 2 active.
  const rotated = engineOf(keyringOf([{ version: 1, state: 'decrypt-only', root }, { version: 2, state: 'active', root: rotatedRoot }]), 0);
  rows.push([`rewrap (s1 -> s2), batch ${batch}`, fmt(measure(() => rotated.rewrap('vin', pseudonyms[i++ % pseudonyms.length]!).pseudonyms.length))]);
  rows.push([`pseudonymize randomized (deterministic=false), batch ${batch}`, fmt(measure(() => cold.pseudonymize('vin', batches[i++ % batches.length]!, { deterministic: false }).pseudonyms.length))]);
}
const cold = engineOf(keyringOf([{ version: 1, state: 'active', root }]), 0);
const small = pool.slice(0, 900);
rows.push(['keyed hash (HMAC-SHA256), batch 900', fmt(measure(() => cold.pseudonymize('device_id', small, { deterministic: true }).pseudonyms.length))]);
const digits = small.map((_, k) => String(1e15 + k * 7919));
rows.push(['FF1 16 digits (noble FF1), batch 900', fmt(measure(() => cold.pseudonymize('account_number', digits, { deterministic: true }).pseudonyms.length))]);
const key = randomBytes(64);
const context = Buffer.from('vin');
const bytes = small.map((v) => Buffer.from(v));
rows.push(['reference: noble aessiv, one cipher per value (bytes only)', fmt(measure(() => bytes.map((b) => aessiv(key, context).encrypt(b)).length))]);

console.log(machineHeader('npm run bench:engine'));
console.log(`one core (a single Node thread), ${SECONDS} s per row after 0.5 s warm-up\n`);
console.log(table(['engine path, 17-character identifiers', 'values/s'], rows));
