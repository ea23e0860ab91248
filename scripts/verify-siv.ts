/**
 * `npm run verify:siv [-- --inputs N]`: the batch AES-SIV engine against @noble/ciphers' aessiv, bit for bit,
 * on 1,000,000 random inputs of 0..64 bytes (by default) under 32-, 48- and 64-byte keys and contexts of
 * 0..23 bytes, each batch decrypted back; and the deterministic pseudonym text of both implementations
 * (api/engine/sivText.ts: the native addon when built, and JavaScript) against noble's output, base64url. Too slow for the unit suite on a busy machine, which keeps a
 * property-based cross-check (test/engine/siv.test.ts); the benchmarks job runs this. Prints progress and a
 * summary; exits 1 on any mismatch.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { aessiv } from '@noble/ciphers/aes.js';
import { packByteArrays, packedItem } from '../api/engine/_blocks.ts';
import { AesSiv } from '../api/engine/siv.ts';
import { javascriptPseudonyms, nativePseudonymsIfLoaded, sivTextImplementation } from '../api/engine/sivText.ts';

const BATCH = 10_000;
const KEY_LENGTHS = [64, 64, 64, 48, 32];

const USAGE = `usage: npm run verify:siv [-- --inputs N]

The batch AES-SIV engine against @noble/ciphers' aessiv, bit for bit, on N random inputs (default 1,000,000)
of 0..64 bytes under 32-, 48- and 64-byte keys, each batch decrypted back, and the pseudonym text of the
native addon (when built) and of JavaScript against noble's. Prints progress and a summary.

exit status: 0 every input matched, 1 a mismatch or an input that did not decrypt, 2 usage error

examples:
  npm run verify:siv
  npm run verify:siv -- --inputs 20000`;

function usageError(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

let values: { inputs: string; help?: boolean | undefined };
try {
  ({ values } = parseArgs({ options: { inputs: { type: 'string', default: '1000000' }, help: { type: 'boolean', short: 'h' } } }));
} catch (error) {
  // parseArgs names the option it could not read, never its value.
  usageError(error instanceof Error ? error.message : 'the arguments cannot be read');
}
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const total = Number(values.inputs);
if (!Number.isInteger(total) || total < 1) usageError('--inputs: a positive integer');

const started = Date.now();
let compared = 0;
let mismatches = 0;
let undecrypted = 0;
for (let batch = 0; compared < total; batch++) {
  const key = randomBytes(KEY_LENGTHS[batch % KEY_LENGTHS.length]!);
  const context = randomBytes(batch % 24);
  const siv = new AesSiv(key);
  const header = siv.headerState([context]);
  const inputs = Array.from({ length: Math.min(BATCH, total - compared) }, () => randomBytes(Math.floor(Math.random() * 65)));
  const packed = packByteArrays(inputs);
  const out = siv.encryptBatch(header, packed);
  const version = 1 + (batch % 1000);
  const textOf = (text: { data: Buffer; offsets: Int32Array } | undefined, i: number): string | undefined => text?.data.toString('latin1', text.offsets[i], text.offsets[i + 1]);
  const javascriptText = javascriptPseudonyms(siv, header, packed, version);
  const nativeText = nativePseudonymsIfLoaded(siv, header, packed, version);
  for (let i = 0; i < inputs.length; i++) {
    const noble = Buffer.from(aessiv(key, context).encrypt(inputs[i]!));
    const nobleText = `s${version}.${noble.toString('base64url')}`;
    const textsDiffer = textOf(javascriptText, i) !== nobleText || (nativeText !== undefined && textOf(nativeText, i) !== nobleText);
    if (Buffer.compare(noble, Buffer.from(packedItem(out, i))) !== 0 || textsDiffer) {
      mismatches++;
      if (mismatches <= 10) process.stderr.write(`mismatch: batch ${batch} item ${i} (input ${inputs[i]!.length} bytes, key ${key.length} bytes, context ${context.length} bytes)\n`);
    }
  }
  const back = siv.decryptBatch(header, out);
  for (let i = 0; i < inputs.length; i++) {
    if (back.valid[i] !== 1 || Buffer.compare(Buffer.from(packedItem(back.plaintexts, i)), inputs[i]!) !== 0) undecrypted++;
  }
  compared += inputs.length;
  if ((batch + 1) % 10 === 0 || compared === total) {
    process.stdout.write(`${compared.toLocaleString('en')} / ${total.toLocaleString('en')} inputs compared, ${mismatches} mismatches, ${undecrypted} not decrypted back (${Math.round((Date.now() - started) / 1000)} s)\n`);
  }
}
const ok = mismatches === 0 && undecrypted === 0;
process.stdout.write(`${ok ? 'OK' : 'FAILED'}: ${compared.toLocaleString('en')} inputs, ${mismatches} mismatches against @noble/ciphers aessiv (payloads and pseudonym text; text implementations: javascript${sivTextImplementation() === 'openssl-batch-native' ? ' and the native addon' : ' only, the native addon is not built'}), ${undecrypted} not decrypted back\n`);
process.exit(ok ? 0 : 1);
