/**
 * `npm run verify:ff1 [-- --inputs N --alphabets A,B]`: the batched FF1 (api/engine/ff1Batch.ts through ff1.ts, the
 * engine's path) against @noble/ciphers' FF1, bit for bit, on N random values per alphabet (default 1,000,000 for
 * each alphabet test/fixtures/policies.json uses), of random lengths from the alphabet's FF1 minimum to 40 (both
 * the double and the BigInt arithmetic), under random 32-byte keys and tweaks of 0..32 bytes, each batch
 * decrypted back. Too slow for the unit suite (noble does about 20,000 values/s), which keeps a 20,000-value
 * cross-check (test/engine/ff1Batch.test.ts). Prints progress and a summary; exits 1 on any mismatch.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { FF1 } from '@noble/ciphers/ff1.js';
import { ALPHABETS, Ff1Text, minimumLength, type AlphabetName } from '../api/engine/ff1.ts';
import { Ff1Batch } from '../api/engine/ff1Batch.ts';

const BATCH = 10_000;
const MAX_LENGTH = 40;

const USAGE = `usage: npm run verify:ff1 [-- --inputs N --alphabets A,B]

The batched FF1 against @noble/ciphers' FF1, bit for bit, on N random values per alphabet (default 1,000,000)
of random lengths up to ${MAX_LENGTH} under random keys and tweaks, each batch decrypted back. Alphabets: names of
${Object.keys(ALPHABETS).join(', ')}; default, the ones test/fixtures/policies.json uses.

exit status: 0 every value matched, 1 a mismatch or a value that did not decrypt, 2 usage error

examples:
  npm run verify:ff1
  npm run verify:ff1 -- --inputs 20000 --alphabets digits,alphanumeric`;

function usageError(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

let values: { inputs: string; alphabets?: string | undefined; help?: boolean | undefined };
try {
  ({ values } = parseArgs({ options: { inputs: { type: 'string', default: '1000000' }, alphabets: { type: 'string' }, help: { type: 'boolean', short: 'h' } } }));
} catch (error) {
  // parseArgs names the option it could not read, never its value.
  usageError(error instanceof Error ? error.message : 'the arguments cannot be read');
}
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const perAlphabet = Number(values.inputs);
if (!Number.isInteger(perAlphabet) || perAlphabet < 1) usageError('--inputs: a positive integer');

function policyAlphabets(): AlphabetName[] {
  const file = JSON.parse(readFileSync('test/fixtures/policies.json', 'utf8')) as { contexts: Record<string, { alphabet?: unknown }> };
  const names = Object.values(file.contexts).flatMap((c) => (typeof c.alphabet === 'string' && c.alphabet in ALPHABETS ? [c.alphabet as AlphabetName] : []));
  return [...new Set(names)];
}
const isAlphabetName = (name: string): name is AlphabetName => name in ALPHABETS;
const names = values.alphabets === undefined ? policyAlphabets() : values.alphabets.split(',');
for (const name of names) if (!isAlphabetName(name)) usageError(`--alphabets: not an alphabet name (${Object.keys(ALPHABETS).join(', ')})`);

const started = Date.now();
let failed = false;
// Which implementation the engine's path takes here: the addon's rounds (dist/native/ff1.node) or the JavaScript ones.
process.stdout.write(`FF1 rounds of domains up to 2^44: ${Ff1Batch.implementation()} (longer values: BigInt JavaScript)\n`);
for (const name of names as AlphabetName[]) {
  const alphabet = ALPHABETS[name];
  const radix = alphabet.length;
  const minLength = minimumLength(radix);
  let compared = 0;
  let mismatches = 0;
  let undecrypted = 0;
  for (let batch = 0; compared < perAlphabet; batch++) {
    const key = randomBytes(32);
    const tweak = randomBytes(batch % 33);
    const count = Math.min(BATCH, perAlphabet - compared);
    const texts = Array.from({ length: count }, () => {
      let text = '';
      for (let j = minLength + randomInt(MAX_LENGTH - minLength + 1); j > 0; j--) text += alphabet[randomInt(radix)]!;
      return text;
    });
    const cipher = new Ff1Text(alphabet, key, tweak);
    const encrypted = cipher.encryptBatch(texts);
    const reference = FF1(radix, key, tweak);
    for (let i = 0; i < count; i++) {
      const expected = reference.encrypt(Array.from(texts[i]!, (c) => alphabet.indexOf(c))).map((d) => alphabet[d]).join('');
      if (encrypted[i] !== expected) {
        mismatches++;
        if (mismatches <= 10) process.stderr.write(`mismatch: ${name} batch ${batch} item ${i} (length ${texts[i]!.length}, tweak ${tweak.length} bytes)\n`);
      }
    }
    const back = cipher.decryptBatch(encrypted);
    for (let i = 0; i < count; i++) if (back[i] !== texts[i]) undecrypted++;
    compared += count;
    if ((batch + 1) % 10 === 0 || compared === perAlphabet) {
      process.stdout.write(`${name}: ${compared.toLocaleString('en')} / ${perAlphabet.toLocaleString('en')} values compared, ${mismatches} mismatches, ${undecrypted} not decrypted back (${Math.round((Date.now() - started) / 1000)} s)\n`);
    }
  }
  const ok = mismatches === 0 && undecrypted === 0;
  if (!ok) failed = true;
  process.stdout.write(`${ok ? 'OK' : 'FAILED'}: ${name} (radix ${radix}), ${compared.toLocaleString('en')} values of ${minLength}..${MAX_LENGTH} characters, ${mismatches} mismatches against @noble/ciphers FF1, ${undecrypted} not decrypted back\n`);
}
process.exit(failed ? 1 : 0);
