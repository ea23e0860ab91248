/**
 * `npm run conformance [-- FILE...]`: runs test-vector files in the Wycheproof JSON formats against
 * the engine's production classes, so auditors can bring their own third-party vectors.
 *
 *   DaeadTest (daead_test_schema*.json), AES-SIV: AesSiv, every key size in the file. A valid case
 *     must encrypt to `ct` and decrypt back; an invalid case must be rejected (key refused or
 *     decryption fails authentication).
 *   FpeListTest (fpe_list_test_schema.json), FF1: Ff1Digits. A valid case must encrypt to `ct` and
 *     decrypt back; an invalid case must be rejected.
 *
 * "acceptable" cases pass either way. Valid cases flagged SmallMessageSize (Wycheproof's LEGACY: the
 * domain is below NIST SP 800-38G Rev. 1's 1,000,000 minimum, which the engine enforces) count as
 * skipped when rejected. Prints one line per file and a last line `conformance: N passed, N failed,
 * N skipped`; exits 1 on any failure, 2 on a usage error (`--help` for usage).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { packByteArrays, packedItem } from '../../api/engine/_blocks.ts';
import { Ff1Digits } from '../../api/engine/ff1.ts';
import { AesSiv } from '../../api/engine/siv.ts';
import { parseCli, type Help } from '../../load-tests/cli.ts';

type Result = 'valid' | 'invalid' | 'acceptable';
interface Tally {
  passed: number;
  failed: number;
  skipped: number;
  failures: string[];
}
interface DaeadCase { tcId: number; comment: string; key: string; aad: string; msg: string; ct: string; result: Result }
interface FpeCase { tcId: number; comment: string; key: string; tweak: string; msg: number[]; ct: number[]; result: Result; flags?: string[] }
interface VectorFile { schema: string; testGroups: { type: string; radix?: number; tests: unknown[] }[] }

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));
const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

function record(tally: Tally, ok: boolean, result: Result, label: string): void {
  if (ok || result === 'acceptable') tally.passed++;
  else {
    tally.failed++;
    tally.failures.push(label);
  }
}

function runDaead(test: DaeadCase, tally: Tally): void {
  let siv: AesSiv;
  try {
    siv = new AesSiv(hex(test.key));
  } catch {
    record(tally, test.result === 'invalid', test.result, `tcId ${test.tcId} (${test.comment}): key refused`);
    return;
  }
  const header = siv.headerState([hex(test.aad)]);
  const decrypted = siv.decryptBatch(header, packByteArrays([hex(test.ct)]));
  if (test.result === 'invalid') {
    record(tally, decrypted.valid[0] === 0, test.result, `tcId ${test.tcId} (${test.comment}): accepted an invalid ciphertext`);
    return;
  }
  const encrypted = packedItem(siv.encryptBatch(header, packByteArrays([hex(test.msg)])), 0);
  const ok = same(encrypted, hex(test.ct)) && decrypted.valid[0] === 1 && same(packedItem(decrypted.plaintexts, 0), hex(test.msg));
  record(tally, ok, test.result, `tcId ${test.tcId} (${test.comment}): wrong ciphertext or decryption`);
}

function runFpe(radix: number, test: FpeCase, tally: Tally): void {
  let encrypted: number[] | undefined;
  let decrypted: number[] | undefined;
  try {
    const ff1 = new Ff1Digits(radix, hex(test.key), hex(test.tweak));
    encrypted = ff1.encrypt([...test.msg]);
    decrypted = ff1.decrypt([...encrypted]);
  } catch {
    if (test.result === 'valid' && test.flags?.includes('SmallMessageSize')) {
      tally.skipped++;
      return;
    }
    record(tally, test.result === 'invalid', test.result, `tcId ${test.tcId} (${test.comment}): rejected a valid case`);
    return;
  }
  if (test.result === 'invalid') {
    record(tally, false, test.result, `tcId ${test.tcId} (${test.comment}): accepted an invalid case`);
    return;
  }
  const ok = encrypted.join(',') === test.ct.join(',') && decrypted.join(',') === test.msg.join(',');
  record(tally, ok, test.result, `tcId ${test.tcId} (${test.comment}): wrong ciphertext or decryption`);
}

export function runFile(path: string): Tally {
  const bytes = readFileSync(path);
  const file = JSON.parse((path.endsWith('.gz') ? gunzipSync(bytes) : bytes).toString('utf8')) as VectorFile;
  const tally: Tally = { passed: 0, failed: 0, skipped: 0, failures: [] };
  for (const group of file.testGroups) {
    if (group.type === 'DaeadTest') for (const test of group.tests) runDaead(test as DaeadCase, tally);
    else if (group.type === 'FpeListTest') for (const test of group.tests) runFpe(group.radix!, test as FpeCase, tally);
    else throw new Error(`${path}: test group type ${group.type} is not supported (DaeadTest, FpeListTest)`);
  }
  return tally;
}

function defaultFiles(): string[] {
  const folders = ['test/fixtures/wycheproof', 'test/fixtures/nist'];
  return folders.flatMap((folder) => readdirSync(folder).filter((f) => /_test\.json(\.gz)?$/.test(f)).sort().map((f) => join(folder, f)));
}

const HELP: Help = {
  usage: 'npm run conformance [-- FILE...]',
  measures: "Runs Wycheproof-format test-vector files (DaeadTest for AES-SIV, FpeListTest for FF1) against the engine's\nproduction classes; without FILE, every *_test.json[.gz] under test/fixtures/wycheproof and test/fixtures/nist.\nPrints one line per file and a total.",
  duration: 'a few seconds',
  failure: 'a vector failed, or none passed',
  examples: ['npm run conformance', 'npm run conformance -- ~/vectors/aes_siv_cmac_test.json'],
};
const { positionals } = parseCli(HELP, { options: {}, allowPositionals: true });
const files = positionals.length > 0 ? positionals : defaultFiles();
const total: Tally = { passed: 0, failed: 0, skipped: 0, failures: [] };
for (const file of files) {
  const tally = runFile(file);
  console.log(`${file}: ${tally.passed} passed, ${tally.failed} failed, ${tally.skipped} skipped`);
  for (const failure of tally.failures.slice(0, 20)) console.log(`  FAILED ${failure}`);
  total.passed += tally.passed;
  total.failed += tally.failed;
  total.skipped += tally.skipped;
}
console.log(`conformance: ${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`);
process.exitCode = total.failed > 0 || total.passed === 0 ? 1 : 0;
