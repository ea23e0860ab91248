/**
 * Reidentify and rewrap of packed batches (an Arrow column's UTF-8 buffers into the engine, the values' or pseudonyms'
 * bytes into the Arrow answer) against the string path, as properties over random batches: the same answers bit for
 * bit, with the same per-item reasons, over nulls (also null slots holding bytes), several record batches, multi-byte
 * and empty values, tokens of several key versions after rotations (decrypt-only, active, destroyed, unknown),
 * randomized and keyed-hash tokens, another context's tokens, tampered and malformed items, and erased subjects
 * (filed under an older or the active version). The bytes parsers of pseudonymFormat.ts against the string ones.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { PackedTexts } from '../../api/engine/engine.ts';
import { parseAwsSampleSecret } from '../../api/engine/legacyAwsSample.ts';
import { Keyring } from '../../api/keyring/keyring.ts';
import { decodePayloadsPacked, decodePayloadsPackedBytes, PACKED_HEADER_MODES, parsePseudonymHeader, parsePseudonymHeadersPacked } from '../../api/engine/pseudonymFormat.ts';
import { SqliteErasureLedger } from '../../api/erasure/sqliteLedger.ts';
import { engineOperations, ErasureSuppression, type PseudonymOperations } from '../../api/erasure/suppression.ts';
import { PlatformError, RequestError } from '../../api/errors.ts';
import { arrowAnswer, arrowAnswerPacked, readArrowColumn } from '../../api/http/arrow.ts';
import { columnsOf, streamOf, stringsOf, type Row } from '../support/arrowRows.ts';
import { engineOf, keyringOf } from '../support/engine.ts';

const JANE = 'sentinel.jane.tokens@example.com'; // filed under the older version 1 only
const JOHN = 'sentinel.john.tokens@example.com'; // filed under the active version 3
const VALUES = [JANE, JOHN, 'anna@example.com', '', 'jänë@example.com', '東京都', '😀', 'x'.repeat(1024)];
const MAX_VALUES = 10_000;

// Version 1 decrypt-only, 2 destroyed (crypto-shredded after tokens were written under it), 3 active; 4 is not in this keyring.
const roots = [1, 2, 3, 4].map(() => randomBytes(64));
const keyring = keyringOf([
  { version: 1, state: 'decrypt-only', root: roots[0] },
  { version: 2, state: 'destroyed' },
  { version: 3, state: 'active', root: roots[2] },
]);
const engine = engineOf(keyring, 0);
/** Engines whose active version is 1, 2, 3 or 4: the tokens a table holds from before each rotation. */
const minters = roots.map((root, i) => engineOf(keyringOf([{ version: i + 1, state: 'active', root }]), 0));
const ledger = new SqliteErasureLedger(join(mkdtempSync(join(tmpdir(), 'packed-tokens-')), 'erasure.db'));
const suppression = new ErasureSuppression(ledger, engine, keyring, { cacheSeconds: 3600 });
const [jane, john] = suppression.pseudonymsInEveryVersion('email', [JANE, JOHN]);
await ledger.create(
  { id: 'er-tokens', reference: 'er-tokens', reason: 'gdpr-art17-1a', filedBy: 'person:olivia', subjects: [{ context: 'email', pseudonyms: [jane![0]!, john![1]!] }], tables: [] },
  { actor: 'person:olivia', action: 'erasure.filed', requestId: 'er-tokens', outcome: 'received' },
);
afterAll(async () => {
  await ledger.close();
});

/** A token of a value: its mode, version and context, possibly tampered with. */
function tokenOf(value: string, version: number, mode: 'deterministic' | 'randomized' | 'hash', context: string): string {
  const minter = minters[version - 1]!;
  return minter.pseudonymize(mode === 'hash' ? 'device_id' : context, [value], { deterministic: mode !== 'randomized' }).pseudonyms[0]!;
}

/** One row of a request: null (its slot may hold bytes), a text, or raw bytes that may not be UTF-8. */

const tokenArbitrary = fc
  .record({
    value: fc.oneof(fc.constantFrom(...VALUES), fc.string({ unit: 'grapheme', maxLength: 12 })),
    version: fc.constantFrom(1, 1, 2, 3, 3, 3, 4),
    mode: fc.constantFrom<'deterministic' | 'randomized' | 'hash'>('deterministic', 'deterministic', 'deterministic', 'randomized', 'hash'),
    context: fc.constantFrom('email', 'email', 'email', 'vin'),
    tamper: fc.oneof({ weight: 4, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.nat() }),
  })
  .map(({ value, version, mode, context, tamper }): Row => {
    let text = tokenOf(value, version, mode, context);
    if (tamper !== null) {
      // One character of the payload changed (or the text cut): authentication-failed, or malformed when no longer canonical.
      const at = text.indexOf('.') + 1 + (tamper % (text.length - text.indexOf('.') - 1));
      text = tamper % 7 === 0 ? text.slice(0, at) : text.slice(0, at) + (text[at] === 'A' ? 'B' : 'A') + text.slice(at + 1);
    }
    return { kind: 'text', text };
  });

const malformedArbitrary: fc.Arbitrary<Row> = fc
  .oneof(
    fc.constantFrom('', 'junk', 's1.', 's.AAAA', 's01.AAAAAAAAAAAAAAAAAAAAAAA', 's3', 'x3.AAAA', 's3.é', 'h3.é', 's4.AAAAAAAAAAAAAAAAAAAAAAA', 's99999999999.AAAA', 'r3.AAAAAAAAAAAAAAAAAAAAAA', 'S3.AAAA', 's3.AAAAA', 's3.AAA=', 's3.東京都東京都東京都東京都東京都東京都'),
    fc.string({ maxLength: 30 }),
    fc.string({ unit: 'grapheme', maxLength: 30 }).map((tail) => `s3.${tail}`),
    fc.stringMatching(/^[sr][1-4]\.[A-Za-z0-9_-]{20,40}$/),
  )
  .map((text): Row => ({ kind: 'text', text }));

/** An erased subject's token that decrypts (filed under version 1 or 3, any mode, under any readable version). */
const erasedTokenArbitrary = fc
  .record({ value: fc.constantFrom(JANE, JOHN), version: fc.constantFrom(1, 3), mode: fc.constantFrom<'deterministic' | 'randomized'>('deterministic', 'randomized') })
  .map(({ value, version, mode }): Row => ({ kind: 'text', text: tokenOf(value, version, mode, 'email') }));

const rowArbitrary: fc.Arbitrary<Row> = fc.oneof(
  { weight: 4, arbitrary: fc.uint8Array({ maxLength: 3 }).map((junk): Row => ({ kind: 'null', junk })) },
  { weight: 16, arbitrary: tokenArbitrary },
  { weight: 2, arbitrary: erasedTokenArbitrary },
  { weight: 6, arbitrary: malformedArbitrary },
  // Not UTF-8: the whole batch is refused before either path (rare, so most batches are answered).
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 6 }).map((bytes): Row => ({ kind: 'bytes', bytes })) },
);

type Outcome = { answer: Buffer } | { code: string; message: string; problems: unknown };

async function outcomeOf(run: () => Promise<Buffer>): Promise<Outcome> {
  try {
    return { answer: await run() };
  } catch (error) {
    if (!(error instanceof PlatformError)) throw error;
    return { code: error.code, message: error.message, problems: error.details };
  }
}

const packedOf = (body: Buffer): PackedTexts => readArrowColumn(body, 1 << 30).packed('values', MAX_VALUES);

/** The routes' two ways of answering reidentify with Arrow: through strings, and packed. */
const reidentifyPaths = {
  strings: async (operations: PseudonymOperations, rows: readonly Row[]) => {
    const { values, errors } = await operations.reidentify('email', stringsOf(rows));
    return arrowAnswer('values', values, errors);
  },
  packed: async (operations: PseudonymOperations, body: Buffer) => {
    const { values, errors } = await operations.reidentifyPacked('email', packedOf(body));
    return arrowAnswerPacked('values', values, errors);
  },
};

const rewrapPaths = {
  strings: async (operations: PseudonymOperations, rows: readonly Row[]) => {
    const { pseudonyms, errors, erased } = await operations.rewrap('email', stringsOf(rows));
    return arrowAnswer('pseudonyms', pseudonyms, [...errors, ...erased.map((index) => ({ index, reason: 'erased' }))]);
  },
  packed: async (operations: PseudonymOperations, body: Buffer) => {
    const { pseudonyms, errors, erased } = await operations.rewrapPacked('email', packedOf(body));
    return arrowAnswerPacked('pseudonyms', pseudonyms, [...errors, ...erased.map((index) => ({ index, reason: 'erased' }))]);
  },
};

/**
 * A rewrap answer with each randomized pseudonym (fresh nonces each time) replaced by its version and value, which is
 * what two rewraps of one token share.
 */
function comparableRewrap(outcome: Outcome): Outcome {
  if (!('answer' in outcome)) return outcome;
  const columns = columnsOf(outcome.answer);
  const pseudonyms = columns.pseudonyms!.map((pseudonym) => {
    if (!pseudonym?.startsWith('r')) return pseudonym;
    const [value] = engine.reidentify('email', [pseudonym]).values;
    return `${pseudonym.slice(0, pseudonym.indexOf('.'))} of ${JSON.stringify(value)}`;
  });
  return { answer: Buffer.from(JSON.stringify({ ...columns, pseudonyms })) };
}

const batchArbitrary = fc.tuple(fc.array(rowArbitrary, { maxLength: 40 }), fc.option(fc.nat()), fc.nat({ max: 5 }));
const splitOf = (rows: readonly Row[], splitAt: number | null) => (splitAt === null || rows.length < 2 ? undefined : 1 + (splitAt % (rows.length - 1)));

describe('reidentify and rewrap of packed batches', () => {
  for (const [name, operations] of [
    ['behind erasure suppression', suppression],
    ['without erasure', engineOperations(engine)],
  ] as const) {
    it(`reidentifies byte for byte as the string path does, ${name}`, async () => {
      await fc.assert(
        fc.asyncProperty(batchArbitrary, async ([rows, splitAt, lead]) => {
          const expected = await outcomeOf(() => reidentifyPaths.strings(operations, rows));
          const actual = await outcomeOf(() => reidentifyPaths.packed(operations, streamOf(rows, splitOf(rows, splitAt), lead)));
          expect(actual).toEqual(expected);
        }),
        { numRuns: 200 },
      );
    });

    it(`rewraps as the string path does, ${name}: deterministic answers byte for byte, randomized ones to the same version and value`, async () => {
      await fc.assert(
        fc.asyncProperty(batchArbitrary, async ([rows, splitAt, lead]) => {
          const expected = comparableRewrap(await outcomeOf(() => rewrapPaths.strings(operations, rows)));
          const actual = comparableRewrap(await outcomeOf(() => rewrapPaths.packed(operations, streamOf(rows, splitOf(rows, splitAt), lead))));
          expect(actual).toEqual(expected);
        }),
        { numRuns: 200 },
      );
    });
  }

  it('withholds erased subjects under any of their tokens, leaving none of their bytes in the answer', async () => {
    const tokens = [tokenOf(JANE, 1, 'deterministic', 'email'), tokenOf(JANE, 3, 'randomized', 'email'), tokenOf('anna@example.com', 1, 'deterministic', 'email'), tokenOf(JOHN, 3, 'deterministic', 'email'), null];
    const body = streamOf(tokens.map((text): Row => (text === null ? { kind: 'null', junk: new Uint8Array(0) } : { kind: 'text', text })), undefined, 0);
    const back = await reidentifyPaths.packed(suppression, body);
    expect(columnsOf(back)).toEqual({ values: [null, null, 'anna@example.com', null, null], reason: ['erased', 'erased', null, 'erased', null] });
    for (const value of [JANE, JOHN]) expect(back.includes(Buffer.from(value))).toBe(false);
    const rewrapped = await rewrapPaths.packed(suppression, body);
    expect(columnsOf(rewrapped).reason).toEqual(['erased', 'erased', null, 'erased', null]);
    for (const pseudonym of [...jane!, ...john!]) expect(rewrapped.includes(Buffer.from(pseudonym))).toBe(false);
  });

  it('never calls the string entry points: no JavaScript string per value', async () => {
    const body = streamOf(VALUES.map((value): Row => ({ kind: 'text', text: tokenOf(value, 1, 'deterministic', 'email') })), undefined, 0);
    const reidentify = vi.spyOn(engine, 'reidentify');
    const rewrap = vi.spyOn(engine, 'rewrap');
    const pseudonymsUnder = vi.spyOn(engine, 'pseudonymsUnder');
    try {
      expect(columnsOf(await reidentifyPaths.packed(suppression, body)).values).toEqual([null, null, ...VALUES.slice(2)]);
      expect(columnsOf(await rewrapPaths.packed(suppression, body)).reason).toEqual(['erased', 'erased', ...VALUES.slice(2).map(() => null)]);
      expect([reidentify.mock.calls.length, rewrap.mock.calls.length, pseudonymsUnder.mock.calls.length]).toEqual([0, 0, 0]);
    } finally {
      vi.restoreAllMocks();
    }
  });

  it('refuses contexts it does not serve (FF1, or an AWS sample key bound): those take the string path', () => {
    expect(engine.takesPackedTokens('email')).toBe(true);
    expect(engine.takesPackedTokens('device_id')).toBe(true);
    expect(engine.takesPackedTokens('account_number')).toBe(false);
    const empty = { data: new Uint8Array(0), offsets: Int32Array.of(0), validity: undefined };
    expect(() => engine.reidentifyPacked('account_number', empty)).toThrow(RequestError);
    expect(() => engine.rewrapPacked('account_number', empty)).toThrow(RequestError);

    const secret = parseAwsSampleSecret(JSON.stringify((JSON.parse(readFileSync('test/fixtures/aws-sample-vectors.json', 'utf8')) as { secret: unknown }).secret));
    const withSample = new Keyring();
    withSample.apply([
      { version: 1, state: 'active', createdAt: '2026-01-01T00:00:00.000Z', material: new Uint8Array(randomBytes(64)) },
      { version: 2, state: 'decrypt-only', createdAt: '2026-01-01T00:00:00.000Z', material: Uint8Array.from(secret.material), legacy: { kind: 'legacy-aws-sample', contexts: ['vin'], nonceStrPos: secret.nonceStrPos, nonceEndPos: secret.nonceEndPos } },
    ]);
    const sampleEngine = engineOf(withSample, 0);
    expect([sampleEngine.takesPackedTokens('vin'), sampleEngine.takesPackedTokens('email')]).toEqual([false, true]);
    expect(() => sampleEngine.reidentifyPacked('vin', empty)).toThrow(RequestError);
  });
});

describe('pseudonym headers and payloads read from bytes', () => {
  const textArbitrary = fc.oneof(
    fc.string({ maxLength: 24 }),
    fc.string({ unit: 'grapheme', maxLength: 24 }),
    fc.stringMatching(/^[srhx](0|[1-9][0-9]{0,11})?\.?[A-Za-z0-9_=+/-]{0,24}$/),
    fc.constantFrom(...VALUES).map((value) => tokenOf(value, 3, 'randomized', 'email')),
  );

  it('parses headers as parsePseudonymHeader does, wherever the payload is ASCII', () => {
    fc.assert(
      fc.property(fc.array(fc.option(textArbitrary), { maxLength: 20 }), (texts) => {
        const items = texts.map((text) => Buffer.from(text ?? '', 'utf8'));
        const offsets = new Int32Array(items.length + 1);
        items.forEach((item, i) => {
          offsets[i + 1] = offsets[i]! + item.length;
        });
        const validity = new Uint8Array(Math.ceil(texts.length / 8));
        texts.forEach((text, i) => {
          if (text !== null) validity[i >> 3]! |= 1 << (i & 7);
        });
        const headers = parsePseudonymHeadersPacked(Buffer.concat(items), offsets, validity);
        texts.forEach((text, i) => {
          const parsed = text === null ? undefined : parsePseudonymHeader(text);
          const fromBytes = headers.modes[i] === 0 ? undefined : { mode: PACKED_HEADER_MODES[headers.modes[i]! - 1], version: headers.versions[i], payloadStart: headers.payloadStarts[i]! - offsets[i]! };
          // Not ASCII: the byte and UTF-16 lengths differ, and the payload is malformed either way (checked while decoding).
          if (text !== null && Buffer.byteLength(text) !== text.length && (parsed === undefined) !== (fromBytes === undefined)) return;
          expect(fromBytes).toEqual(parsed && { mode: parsed.mode, version: parsed.version, payloadStart: parsed.payloadStart });
        });
      }),
      { numRuns: 300 },
    );
  });

  it('decodes payloads bit for bit as decodePayloadsPacked does, with the same canonical check', () => {
    const payloadArbitrary = fc.oneof(fc.stringMatching(/^[A-Za-z0-9_-]{0,30}$/), fc.string({ maxLength: 12 }), fc.uint8Array({ maxLength: 22 }).map((bytes) => Buffer.from(bytes).toString('base64url')));
    fc.assert(
      fc.property(fc.array(payloadArbitrary.filter((payload) => Buffer.byteLength(payload) === payload.length && payload.length % 4 !== 1), { maxLength: 12 }), (payloads) => {
        const texts = payloads.map((payload) => `s1.${payload}`);
        const capacity = payloads.reduce((sum, payload) => sum + Math.floor((payload.length * 3) / 4), 0);
        const expected = decodePayloadsPacked(texts, texts.map(() => 3), capacity);
        const bytes = Buffer.from(texts.join(''), 'latin1');
        const starts: number[] = [];
        const ends: number[] = [];
        let at = 0;
        for (const text of texts) {
          starts.push(at + 3);
          ends.push((at += text.length));
        }
        const actual = decodePayloadsPackedBytes(bytes, starts, ends, capacity);
        expect({ ...actual, data: Buffer.from(actual.data) }).toEqual({ ...expected, data: Buffer.from(expected.data) });
      }),
      { numRuns: 300 },
    );
  });
});
