/**
 * `npm run bench:engine`: engine throughput on one core for 17-character identifiers.
 * Cache-miss path: the cache is off, every value is encrypted and encoded. Warm path: every value
 * is already in the cache. Both go through PseudonymEngine.pseudonymize, the production path; reidentify and
 * rewrap (version 1 pseudonyms to version 2, as a re-keying job asks) go through their engine methods. Keyed hash
 * and FF1 (16 digits) rows run beside their previous per-value paths (createHmac, noble FF1) in the same run.
 * Each row gives wall-clock and CPU-time rates: on a shared machine the CPU column is the one to compare.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { aessiv } from '@noble/ciphers/aes.js';
import { FF1 } from '@noble/ciphers/ff1.js';
import { Ff1Batch } from '../api/engine/ff1Batch.ts';
import { keyedHashImplementation } from '../api/engine/keyedHash.ts';
import { pseudonymFormatter } from '../api/engine/pseudonymFormat.ts';
import { engineOf, keyringOf } from '../test/support/engine.ts';
import { machineHeader, table, vins } from './machine.ts';
import { parseCli, type Help } from './cli.ts';

const HELP: Help = {
  usage: 'npm run bench:engine',
  measures: 'Engine throughput on one core for 17-character VINs, batches of 900 and 10,000: the cache-miss path (every\nvalue encrypted and encoded) and the warm path (every value cached), through PseudonymEngine.pseudonymize; reidentify, and rewrap from version 1 to version 2;\nkeyed hash and FF1 16 digits beside their previous per-value paths. Wall-clock and CPU-time values/s per row.',
  duration: 'about a minute (BENCH_SECONDS per row after a 0.5 s warm-up)',
  environment: [['BENCH_SECONDS', 'seconds per measured row (default 3)']],
  examples: ['npm run bench:engine', 'BENCH_SECONDS=10 npm run bench:engine'],
};
parseCli(HELP, { options: {} });

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);

/** Values/s of CPU time per measured row, in row order: on a shared machine the wall-clock column understates. */
const cpuRates: number[] = [];

function measure(run: () => number): number {
  for (let warm = performance.now(); performance.now() - warm < 500; ) run();
  let values = 0;
  const started = performance.now();
  const cpuStarted = process.cpuUsage();
  while (performance.now() - started < SECONDS * 1000) values += run();
  const cpu = process.cpuUsage(cpuStarted);
  cpuRates.push(values / ((cpu.user + cpu.system) / 1e6));
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
const large = pool.slice(0, 10_000);
// Which keyed hash ran: the OpenSSL addon (dist/native, npm run build) or, without it, one createHmac per value.
const keyedHash = keyedHashImplementation();
rows.push([`keyed hash (HMAC-SHA256, ${keyedHash}), batch 900`, fmt(measure(() => cold.pseudonymize('device_id', small, { deterministic: true }).pseudonyms.length))]);
rows.push([`keyed hash (HMAC-SHA256, ${keyedHash}), batch 10000`, fmt(measure(() => cold.pseudonymize('device_id', large, { deterministic: true }).pseudonyms.length))]);
// The keyed hash as the engine did it before: one createHmac per value, the same pseudonym format.
const hmacKey = randomBytes(32);
const hashFormat = pseudonymFormatter('hash', 1);
const NUL = new Uint8Array([0]);
rows.push(['reference: keyed hash, one createHmac per value (previous path)', fmt(measure(() => small.map((v) => hashFormat(createHmac('sha256', hmacKey).update('device_id', 'utf8').update(NUL).update(Buffer.from(v, 'utf8')).digest())).length))]);
const digits = small.map((_, k) => String(1e15 + k * 7919));
const manyDigits = large.map((_, k) => String(1e15 + k * 7919));
// Which rounds ran: the addon (dist/native/ff1.node, npm run build) or, without it, ff1Batch.ts in JavaScript.
const ff1 = Ff1Batch.implementation() === 'openssl-batch-native' ? 'openssl-batch addon' : 'batched on OpenSSL, JavaScript rounds';
rows.push([`FF1 16 digits (${ff1}), batch 900`, fmt(measure(() => cold.pseudonymize('account_number', digits, { deterministic: true }).pseudonyms.length))]);
rows.push([`FF1 16 digits (${ff1}), batch 10000`, fmt(measure(() => cold.pseudonymize('account_number', manyDigits, { deterministic: true }).pseudonyms.length))]);
const fpeTokens = cold.pseudonymize('account_number', digits, { deterministic: true }).pseudonyms as string[];
rows.push(['FF1 16 digits reidentify, batch 900', fmt(measure(() => cold.reidentify('account_number', fpeTokens).values.length))]);
// FF1 as the engine did it before: noble's FF1 per value (one instance per key and context), characters to digits and back.
const nobleFf1 = FF1(10, randomBytes(32), Buffer.from('account_number'));
const fewDigits = digits.slice(0, 50);
rows.push(['reference: noble FF1 16 digits, one value at a time (previous path)', fmt(measure(() => fewDigits.map((v) => nobleFf1.encrypt(Array.from(v, Number)).join('')).length))]);
const key = randomBytes(64);
const context = Buffer.from('vin');
const bytes = small.map((v) => Buffer.from(v));
rows.push(['reference: noble aessiv, one cipher per value (bytes only)', fmt(measure(() => bytes.map((b) => aessiv(key, context).encrypt(b)).length))]);

console.log(machineHeader('npm run bench:engine'));
console.log(`one core (a single Node thread), ${SECONDS} s per row after 0.5 s warm-up\n`);
console.log(table(['engine path, 17-character identifiers', 'values/s', 'values/s per CPU-second'], rows.map((row, k) => [...row, fmt(cpuRates[k]!)])));
