/**
 * `npm run bench:stages`: where the time of the cache-miss path goes, stage by stage, for a batch of
 * 900 VINs on one core, using the functions the engine calls. Plus the JSON work the HTTP path adds.
 */
import { randomBytes } from 'node:crypto';
import { AesSiv } from '../api/engine/siv.ts';
import { asBuffer, packUtf8 } from '../api/engine/_text.ts';
import { machineHeader, table, vins } from './machine.ts';
import { parseCli, type Help } from './cli.ts';

const HELP: Help = {
  usage: 'npm run bench:stages',
  measures: 'Where the time of the cache-miss path goes, stage by stage, for a batch of 900 VINs on one core (the\nfunctions the engine calls), plus the JSON work the HTTP path adds.',
  duration: 'about 10 to 20 s',
  examples: ['npm run bench:stages'],
};
parseCli(HELP, { options: {} });

const BATCH = 900;
const siv = new AesSiv(randomBytes(64));
const header = siv.headerState([Buffer.from('vin')]);
const values = vins(BATCH);
const body = JSON.stringify({ context: 'vin', values });
const packed = packUtf8(values);
const encrypted = siv.encryptBatch(header, packed);
const bytes = asBuffer(encrypted.data);
const encode = (): string[] => values.map((_, i) => 's1.' + bytes.toString('base64url', encrypted.offsets[i], encrypted.offsets[i + 1]));
const pseudonyms = encode();

function nanosecondsPerValue(run: () => unknown): string {
  for (let i = 0; i < 2000; i++) run();
  const rounds = 20_000;
  const started = performance.now();
  for (let i = 0; i < rounds; i++) run();
  return (((performance.now() - started) / rounds) * 1e6 / BATCH).toFixed(0);
}

const rows = [
  ['Unicode and length checks', nanosecondsPerValue(() => values.every((v) => v.isWellFormed() && v.length < 300))],
  ['UTF-8 packing of the batch', nanosecondsPerValue(() => packUtf8(values))],
  ['AES-SIV encryptBatch (S2V rounds and CTR on OpenSSL AES-ECB)', nanosecondsPerValue(() => siv.encryptBatch(header, packed))],
  ['base64url text and the s1. prefix', nanosecondsPerValue(encode)],
  ['HTTP path: JSON.parse of the request', nanosecondsPerValue(() => JSON.parse(body))],
  ['HTTP path: JSON.stringify of the answer', nanosecondsPerValue(() => JSON.stringify({ pseudonyms, keyVersion: 1 }))],
];
console.log(machineHeader('npm run bench:stages'));
console.log(`batches of ${BATCH} VINs, one core\n`);
console.log(table(['stage', 'ns per value'], rows));
