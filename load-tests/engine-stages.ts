/**
 * `npm run bench:stages`: where the time of the engine's AES-SIV paths goes, stage by stage, for a batch of 900 VINs
 * on one core, using the functions the engine calls: the cache-miss pseudonymize path, the reidentify path (and what
 * rewrap adds: one encryption under the active key), plus the JSON work the HTTP path adds. CPU time, so that the
 * figures hold on a shared machine; the whole engine calls are timed alongside, so the stages can be checked against
 * their sum.
 */
import { randomBytes } from 'node:crypto';
import { AesSiv } from '../api/engine/siv.ts';
import { asBuffer, packUtf8 } from '../api/engine/_text.ts';
import { decodePayloadsPacked, parsePseudonymHeader } from '../api/engine/pseudonymFormat.ts';
import { engineOf, keyringOf } from '../test/support/engine.ts';
import { machineHeader, table, vins } from './machine.ts';
import { parseCli, type Help } from './cli.ts';

const HELP: Help = {
  usage: 'npm run bench:stages',
  measures:
    'Where the time of the AES-SIV paths goes, stage by stage, for a batch of 900 VINs on one core (the functions the\nengine calls): pseudonymize (cache miss), reidentify, and what rewrap adds; the whole engine calls beside them;\nplus the JSON work the HTTP path adds. Nanoseconds of CPU time per value.',
  duration: 'about 20 to 40 s',
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
const headers = pseudonyms.map((text) => parsePseudonymHeader(text)!);
const payloadStarts = headers.map((parsed) => parsed.payloadStart);
const payloadBytes = headers.reduce((sum, parsed) => sum + parsed.payloadLength, 0);
const decrypted = siv.decryptBatch(header, encrypted);
const plaintexts = asBuffer(decrypted.plaintexts.data);

const root = randomBytes(64);
const engine = engineOf(keyringOf([{ version: 1, state: 'active', root }]), 0);
const rotated = engineOf(keyringOf([{ version: 1, state: 'decrypt-only', root }, { version: 2, state: 'active', root: randomBytes(64) }]), 0);
const enginePseudonyms = engine.pseudonymize('vin', values, { deterministic: true }).pseudonyms;

function nanosecondsPerValue(run: () => unknown): string {
  for (let i = 0; i < 2000; i++) run();
  const rounds = 10_000;
  const started = process.cpuUsage();
  for (let i = 0; i < rounds; i++) run();
  const cpu = process.cpuUsage(started);
  return (((cpu.user + cpu.system) * 1000) / rounds / BATCH).toFixed(0);
}

const rows = [
  ['pseudonymize: Unicode and length checks', nanosecondsPerValue(() => values.every((v) => v.isWellFormed() && v.length < 300))],
  ['pseudonymize: UTF-8 packing of the batch', nanosecondsPerValue(() => packUtf8(values))],
  ['pseudonymize: AES-SIV encryptBatch (S2V rounds and CTR on OpenSSL AES-ECB)', nanosecondsPerValue(() => siv.encryptBatch(header, packed))],
  ['pseudonymize: base64url text and the s1. prefix', nanosecondsPerValue(encode)],
  ['pseudonymize: the engine call (cache off)', nanosecondsPerValue(() => engine.pseudonymize('vin', values, { deterministic: true }))],
  ['reidentify: pseudonym headers (mode, version)', nanosecondsPerValue(() => pseudonyms.map((text) => parsePseudonymHeader(text)))],
  ['reidentify: payloads decoded into one buffer, spelling checked', nanosecondsPerValue(() => decodePayloadsPacked(pseudonyms, payloadStarts, payloadBytes))],
  ['reidentify: AES-SIV decryptBatch (CTR, S2V, tag comparison)', nanosecondsPerValue(() => siv.decryptBatch(header, encrypted))],
  ['reidentify: UTF-8 strings of the values', nanosecondsPerValue(() => values.map((_, k) => plaintexts.toString('utf8', decrypted.plaintexts.offsets[k], decrypted.plaintexts.offsets[k + 1])))],
  ['reidentify: the engine call', nanosecondsPerValue(() => engine.reidentify('vin', enginePseudonyms))],
  ['rewrap: the engine call (reidentify stages but the strings, then encryptBatch and text)', nanosecondsPerValue(() => rotated.rewrap('vin', enginePseudonyms))],
  ['HTTP path: JSON.parse of the request', nanosecondsPerValue(() => JSON.parse(body))],
  ['HTTP path: JSON.stringify of the answer', nanosecondsPerValue(() => JSON.stringify({ pseudonyms, keyVersion: 1 }))],
];
console.log(machineHeader('npm run bench:stages'));
console.log(`batches of ${BATCH} VINs, one core, CPU time\n`);
console.log(table(['stage', 'ns per value'], rows));
