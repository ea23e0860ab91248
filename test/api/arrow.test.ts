/**
 * Arrow IPC bodies of the batch routes over real HTTP (api/http/arrow.ts): the same answers as JSON bit for bit,
 * nulls kept, withheld and failed rows explained in the `reason` column, and every refusal a problem+json with a
 * stable type that quotes no value.
 */
import { LargeUtf8, Int32, Table, tableFromIPC, tableToIPC, Utf8, vectorFromArray, type DataType } from 'apache-arrow';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { writeTestRegistry } from '../support/catalog.ts';
import { assertMatchesOpenApi } from '../support/openapi.ts';
import { startTestService, withTestService, type TestService } from '../support/service.ts';
import { packedStrings } from '../../api/http/arrow.ts';

// The one function that turns an Arrow column into a string per value, watched: the packed paths must never call it.
vi.mock('../../api/http/arrow.ts', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../api/http/arrow.ts')>();
  return { ...original, packedStrings: vi.fn(original.packedStrings) };
});

const ARROW = 'application/vnd.apache.arrow.stream';
const SENTINEL = 'SENTINELVIN0ARROW7';
const ERASED_EMAIL = 'erased.person.arrow@example.org';
const VALUES = ['1HGCM82633A004352', null, 'jänë@example.com', '', '東京都', 'WVWZZZ1JZXW000001', '1HGCM82633A004352', null];

interface Problem {
  type: string;
  status: number;
  detail?: string;
  errors?: { index: number; reason: string }[];
}
interface ArrowAnswer {
  status: number;
  headers: Headers;
  columns: Record<string, (string | null)[]>;
  problem?: Problem;
  text?: string;
}

let api: TestService;
let officer: string;
let rewrapKey: string;
beforeAll(async () => {
  const registry = writeTestRegistry([{ namespace: 'crm', name: 'people', columns: { email: 'string' }, contexts: { email: 'email' } }]);
  api = await startTestService({ PSEUDO_ERASURE_REGISTRY_FILE: registry });
  officer = await api.createKey('officer', ['privacy-officer']);
  rewrapKey = await api.createKey('rekey-arrow', ['rewrap']);
});
afterAll(async () => {
  await api.close();
});

function stream(values: readonly (string | null)[], type: DataType = new Utf8(), name = 'values'): Buffer {
  const bytes = tableToIPC(new Table({ [name]: vectorFromArray(values, type) }), 'stream');
  return Buffer.from(bytes);
}

/** POSTs a body as Arrow; the answer's columns when it is Arrow, its problem when it is one (checked against the OpenAPI document). */
async function postArrow(path: string, query: string, body: Uint8Array, options: { apiKey?: string; accept?: string; contentType?: string; url?: string } = {}): Promise<ArrowAnswer> {
  const response = await fetch(`${options.url ?? api.url}${path}?${query}`, {
    method: 'POST',
    headers: { 'content-type': options.contentType ?? ARROW, accept: options.accept ?? ARROW, 'x-api-key': options.apiKey ?? api.keys.pseudonymize },
    body: new Uint8Array(body),
  });
  const bytes = new Uint8Array(await response.arrayBuffer());
  const contentType = response.headers.get('content-type') ?? '';
  if (contentType.startsWith(ARROW)) {
    const table = tableFromIPC(bytes);
    const columns = Object.fromEntries(table.schema.fields.map((field) => [field.name, [...(table.getChild(field.name)!.toArray() as (string | null)[])]]));
    return { status: response.status, headers: response.headers, columns };
  }
  const text = Buffer.from(bytes).toString('utf8');
  const parsed: unknown = JSON.parse(text);
  assertMatchesOpenApi('POST', path, response.status, contentType, parsed);
  return { status: response.status, headers: response.headers, columns: {}, problem: response.status >= 400 ? (parsed as Problem) : undefined, text };
}

const pseudonymizeJson = async (context: string, values: readonly (string | null)[], deterministic = true) =>
  (await api.call('POST', '/v1/pseudonymize', { apiKey: api.keys.pseudonymize, body: { context, values, deterministic } })).json as { pseudonyms: (string | null)[]; keyVersion: number; erased?: number[] };

describe('Arrow IPC bodies', () => {
  it('pseudonymizes an Arrow body answered as Arrow without a string per value (the packed path)', async () => {
    const expected = await pseudonymizeJson('vin', VALUES);
    vi.mocked(packedStrings).mockClear();
    const answer = await postArrow('/v1/pseudonymize', 'context=vin', stream(VALUES));
    expect(answer.columns.pseudonyms).toEqual(expected.pseudonyms);
    expect(vi.mocked(packedStrings)).not.toHaveBeenCalled();
    // An Arrow body answered as JSON needs the strings.
    await postArrow('/v1/pseudonymize', 'context=vin', stream(VALUES), { accept: 'application/json' });
    expect(vi.mocked(packedStrings)).toHaveBeenCalledTimes(1);
  });

  it('pseudonymizes to exactly what the JSON body gives, nulls kept, in Utf8 and LargeUtf8', async () => {
    for (const context of ['vin', 'email', 'device_id']) {
      const expected = await pseudonymizeJson(context, VALUES);
      for (const type of [new Utf8(), new LargeUtf8()]) {
        const answer = await postArrow('/v1/pseudonymize', `context=${context}`, stream(VALUES, type));
        expect(answer.status).toBe(200);
        expect(answer.headers.get('content-type')).toBe(ARROW);
        expect(answer.headers.get('pseudo-key-version')).toBe(String(expected.keyVersion));
        expect(answer.columns.pseudonyms).toEqual(expected.pseudonyms);
        expect(answer.columns.reason).toEqual(VALUES.map(() => null));
      }
    }
    const accounts = ['4111111111111111', null, '0000'];
    expect((await postArrow('/v1/pseudonymize', 'context=account_number', stream(accounts))).columns.pseudonyms).toEqual((await pseudonymizeJson('account_number', accounts)).pseudonyms);
  });

  it('answers JSON to an Arrow request that does not accept Arrow, and takes the options from the query', async () => {
    const answer = await postArrow('/v1/pseudonymize', 'context=vin&deterministic=false', stream(['A', 'A']), { accept: 'application/json' });
    expect(answer.status).toBe(200);
    const body = JSON.parse(answer.text!) as { pseudonyms: string[]; keyVersion: number };
    expect(body.pseudonyms[0]).toMatch(/^r1\./);
    expect(body.pseudonyms[0]).not.toBe(body.pseudonyms[1]);
    expect(body.keyVersion).toBe(1);
  });

  it('answers Arrow to a JSON request that accepts it', async () => {
    const expected = await pseudonymizeJson('vin', VALUES);
    const response = await fetch(`${api.url}/v1/pseudonymize`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: `${ARROW}, application/problem+json`, 'x-api-key': api.keys.pseudonymize },
      body: JSON.stringify({ context: 'vin', values: VALUES }),
    });
    expect(response.headers.get('content-type')).toBe(ARROW);
    expect([...(tableFromIPC(new Uint8Array(await response.arrayBuffer())).getChild('pseudonyms')!.toArray() as (string | null)[])]).toEqual(expected.pseudonyms);
  });

  it('takes Accept quality into account (;q=0 is JSON) and refuses allVersions with an Arrow answer (it has one column)', async () => {
    const json = async (accept: string, body: unknown) =>
      fetch(`${api.url}/v1/pseudonymize`, { method: 'POST', headers: { 'content-type': 'application/json', accept, 'x-api-key': api.keys.pseudonymize }, body: JSON.stringify(body) });
    const notArrow = await json(`${ARROW};q=0, application/json`, { context: 'vin', values: VALUES });
    expect(notArrow.headers.get('content-type')).toMatch(/^application\/json/);
    const allVersions = await json(ARROW, { context: 'vin', values: VALUES, allVersions: true });
    expect(allVersions.status).toBe(400);
    expect(((await allVersions.json()) as Problem).detail).toContain('allVersions');
  });

  it('reidentifies, explaining each failed row in the reason column', async () => {
    const pseudonyms = (await pseudonymizeJson('vin', VALUES)).pseudonyms;
    const back = await postArrow('/v1/reidentify', 'context=vin', stream(pseudonyms), { apiKey: api.keys.reidentify });
    expect(back.status).toBe(200);
    expect(back.columns.values).toEqual(VALUES);
    expect(back.headers.get('pseudo-key-version')).toBeNull();

    const good = pseudonyms[0]!;
    const tampered = good.slice(0, -2) + (good.endsWith('AA') ? 'BA' : 'AA');
    const mixed = await postArrow('/v1/reidentify', 'context=vin', stream([good, tampered, 'junk', null]), { apiKey: api.keys.reidentify });
    expect(mixed.columns).toEqual({ values: [VALUES[0], null, null, null], reason: [null, 'authentication-failed', 'malformed', null] });
    const json = await api.call('POST', '/v1/reidentify', { apiKey: api.keys.reidentify, body: { context: 'vin', pseudonyms: [good, tampered, 'junk', null] } });
    expect(json.json).toEqual({ values: [VALUES[0], null, null, null], errors: [{ index: 1, reason: 'authentication-failed' }, { index: 2, reason: 'malformed' }] });

    const accounts = (await pseudonymizeJson('account_number', ['4111111111111111'])).pseudonyms;
    expect((await postArrow('/v1/reidentify', 'context=account_number&keyVersion=1', stream(accounts), { apiKey: api.keys.reidentify })).columns.values).toEqual(['4111111111111111']);
    expect((await postArrow('/v1/reidentify', 'context=account_number&keyVersion=7', stream(accounts), { apiKey: api.keys.reidentify })).columns.reason).toEqual(['unknown-key-version']);
  });

  it('rewraps to exactly what the JSON body gives, failures in the reason column', async () => {
    const pseudonyms = [...(await pseudonymizeJson('vin', VALUES)).pseudonyms, 'junk'];
    const rewrapped = await api.call('POST', '/v1/rewrap', { apiKey: rewrapKey, body: { context: 'vin', pseudonyms } });
    expect(rewrapped.status).toBe(200);
    const json = rewrapped.json as { pseudonyms: (string | null)[]; keyVersion: number; errors: { index: number; reason: string }[] };
    expect(json.errors).toEqual([{ index: VALUES.length, reason: 'malformed' }]);
    const answer = await postArrow('/v1/rewrap', 'context=vin', stream(pseudonyms), { apiKey: rewrapKey });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('pseudo-key-version')).toBe(String(json.keyVersion));
    expect(answer.columns).toEqual({ pseudonyms: json.pseudonyms, reason: [...VALUES.map(() => null), 'malformed'] });
  });

  it('withholds a subject whose erasure was filed: null, and `erased` in the reason column', async () => {
    const filed = await api.call('POST', '/v1/erasure-requests', { apiKey: officer, body: { reference: 'ARROW-1', reason: 'gdpr-art17-1a', subjects: [{ context: 'email', value: ERASED_EMAIL }] } });
    expect(filed.status).toBe(202);
    const values = ['kept@example.org', ERASED_EMAIL, null];
    const json = await pseudonymizeJson('email', values);
    expect(json.erased).toEqual([1]);
    const answer = await postArrow('/v1/pseudonymize', 'context=email', stream(values));
    expect(answer.columns).toEqual({ pseudonyms: json.pseudonyms, reason: [null, 'erased', null] });
    const back = await postArrow('/v1/reidentify', 'context=email', stream([(await pseudonymizeJson('email', ['kept@example.org'])).pseudonyms[0]!]), { apiKey: api.keys.reidentify });
    expect(back.columns.values).toEqual(['kept@example.org']);
  });

  it('reidentifies and rewraps Arrow bodies on the packed path: no string entry point, the JSON answers, audited and counted as they are', async () => {
    const values = ['kept@example.org', SENTINEL, null, 'jänë@example.com', '', '東京都'];
    const pseudonyms = (await pseudonymizeJson('email', values)).pseudonyms;
    const randomized = (await pseudonymizeJson('email', [SENTINEL, 'kept@example.org'], false)).pseudonyms;
    // Filed after its pseudonyms were written: both tokens of the sentinel are withheld from now on.
    const filed = await api.call('POST', '/v1/erasure-requests', { apiKey: officer, body: { reference: 'ARROW-2', reason: 'gdpr-art17-1a', subjects: [{ context: 'email', value: SENTINEL }] } });
    expect(filed.status).toBe(202);
    const good = pseudonyms[0]!;
    const batch = [...pseudonyms, randomized[0]!, randomized[1]!, good.slice(0, -2) + (good.endsWith('AA') ? 'BA' : 'AA'), `s1.${SENTINEL}`, SENTINEL, (await pseudonymizeJson('vin', ['kept@example.org'])).pseudonyms[0]!, (await pseudonymizeJson('device_id', ['x'])).pseudonyms[0]!];
    const service = api.running.service;
    const strings = [vi.spyOn(service.engine, 'reidentify'), vi.spyOn(service.engine, 'rewrap'), vi.spyOn(service.pseudonyms, 'reidentify'), vi.spyOn(service.pseudonyms, 'rewrap')];
    const counted = vi.spyOn(service.metrics, 'countValues');
    vi.mocked(packedStrings).mockClear();
    try {
      const back = await postArrow('/v1/reidentify', 'context=email', stream(batch), { apiKey: api.keys.reidentify });
      const rewrapped = await postArrow('/v1/rewrap', 'context=email', stream(batch), { apiKey: rewrapKey });
      expect(strings.map((spy) => spy.mock.calls.length)).toEqual([0, 0, 0, 0]);
      expect(vi.mocked(packedStrings)).not.toHaveBeenCalled();
      expect(counted.mock.calls).toEqual([
        ['reidentify', 'email', batch.length],
        ['rewrap', 'email', batch.length],
      ]);

      const json = (await api.call('POST', '/v1/reidentify', { apiKey: api.keys.reidentify, body: { context: 'email', pseudonyms: batch } })).json as { values: (string | null)[]; errors: { index: number; reason: string }[] };
      expect(json.errors.map((error) => error.reason)).toEqual(['erased', 'erased', 'authentication-failed', 'malformed', 'malformed', 'authentication-failed', 'irreversible']);
      const reasons = batch.map((_, index) => json.errors.find((error) => error.index === index)?.reason ?? null);
      expect(back.columns).toEqual({ values: json.values, reason: reasons });
      expect(back.headers.get('pseudo-key-version')).toBeNull();

      const jsonRewrap = (await api.call('POST', '/v1/rewrap', { apiKey: rewrapKey, body: { context: 'email', pseudonyms: batch } })).json as { pseudonyms: (string | null)[]; keyVersion: number; errors: { index: number; reason: string }[]; erased: number[] };
      expect(jsonRewrap.erased).toEqual([1, 6]);
      expect(rewrapped.headers.get('pseudo-key-version')).toBe(String(jsonRewrap.keyVersion));
      // The randomized token gets fresh nonces each time: compared by what it reidentifies to.
      expect(rewrapped.columns.pseudonyms!.map((pseudonym, i) => (i === 7 ? null : pseudonym))).toEqual(jsonRewrap.pseudonyms.map((pseudonym, i) => (i === 7 ? null : pseudonym)));
      expect(rewrapped.columns.pseudonyms![7]).toMatch(/^r1\./);
      expect(rewrapped.columns.reason).toEqual(batch.map((_, index) => (jsonRewrap.erased.includes(index) ? 'erased' : (jsonRewrap.errors.find((error) => error.index === index)?.reason ?? null))));
      strings.forEach((spy) => spy.mockClear());
      // An Arrow body answered as JSON takes the string path.
      await postArrow('/v1/reidentify', 'context=email', stream(batch), { apiKey: api.keys.reidentify, accept: 'application/json' });
      expect(strings[0]!.mock.calls.length).toBe(1);
    } finally {
      vi.restoreAllMocks();
    }
    const audit = api
      .logs()
      .split('\n')
      .filter((line) => line.includes('"audit":true') && line.includes('"context":"email"') && line.includes(`"count":${batch.length}`));
    expect(audit.filter((line) => line.includes('"action":"reidentify"')).length).toBeGreaterThanOrEqual(2);
    expect(audit.filter((line) => line.includes('"action":"rewrap"')).length).toBeGreaterThanOrEqual(2);

    // Refusals name indexes only; nothing of the sentinel in a problem or a log line (checked at the end of the file).
    const invalid = stream([SENTINEL, 'x']);
    invalid[invalid.indexOf(Buffer.from(SENTINEL)) + 3] = 0xff;
    for (const [path, apiKey] of [['/v1/reidentify', api.keys.reidentify], ['/v1/rewrap', rewrapKey]] as const) {
      const refused = await postArrow(path, 'context=email', invalid, { apiKey });
      expect(refused.problem).toMatchObject({ type: 'urn:pseudonymization:problem:validation-failed', errors: [{ index: 0, reason: 'is not valid UTF-8' }] });
      expect(refused.text).not.toContain('SENTINEL');
    }
  });

  it('refuses a body that is not an Arrow stream: 400 malformed-arrow, never a 500', async () => {
    const good = stream([SENTINEL, 'x']);
    const bodies = [Buffer.from(`{"values":["${SENTINEL}"]}`), good.subarray(0, good.length - 40), good.subarray(0, 20), Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0]), good.subarray(8)]), Buffer.alloc(0)];
    for (const body of bodies) {
      const answer = await postArrow('/v1/pseudonymize', 'context=vin', body);
      expect(answer.status).toBe(400);
      expect(answer.problem!.type).toBe('urn:pseudonymization:problem:malformed-arrow');
      expect(answer.text).not.toContain(SENTINEL);
    }
    const file = Buffer.from(tableToIPC(new Table({ values: vectorFromArray([SENTINEL], new Utf8()) }), 'file'));
    const asFile = await postArrow('/v1/pseudonymize', 'context=vin', file);
    expect(asFile.status).toBe(400);
    expect(asFile.problem!.type).toBe('urn:pseudonymization:problem:malformed-arrow');
  });

  it('refuses offsets that point outside the data, or a value that is not UTF-8, naming indexes only', async () => {
    const body = stream(['abcd', SENTINEL]);
    // The offsets buffer is 0, 4, 4 + the sentinel's length: push the last one past the end of the data.
    const offsets = Buffer.alloc(12);
    offsets.writeInt32LE(4, 4);
    offsets.writeInt32LE(4 + SENTINEL.length, 8);
    const at = body.indexOf(offsets);
    expect(at).toBeGreaterThan(0);
    const broken = Buffer.from(body);
    broken.writeInt32LE(4096, at + 8);
    const outside = await postArrow('/v1/pseudonymize', 'context=vin', broken);
    expect(outside.status).toBe(400);
    expect(outside.problem!.type).toBe('urn:pseudonymization:problem:malformed-arrow');

    const invalid = Buffer.from(body);
    invalid[invalid.indexOf(Buffer.from(SENTINEL)) + 3] = 0xff;
    const answer = await postArrow('/v1/pseudonymize', 'context=vin', invalid);
    expect(answer.status).toBe(400);
    expect(answer.problem).toMatchObject({ type: 'urn:pseudonymization:problem:validation-failed', errors: [{ index: 1, reason: 'is not valid UTF-8' }] });
    expect(answer.text).not.toContain('SENTINEL');
  });

  it('refuses a column that is not strings, or more than one column: 400 validation-failed', async () => {
    const numbers = Buffer.from(tableToIPC(new Table({ values: vectorFromArray([1, 2], new Int32()) }), 'stream'));
    const two = Buffer.from(tableToIPC(new Table({ a: vectorFromArray([SENTINEL], new Utf8()), b: vectorFromArray([SENTINEL], new Utf8()) }), 'stream'));
    for (const body of [numbers, two]) {
      const answer = await postArrow('/v1/pseudonymize', 'context=vin', body);
      expect(answer.status).toBe(400);
      expect(answer.problem!.type).toBe('urn:pseudonymization:problem:validation-failed');
      expect(answer.text).not.toContain(SENTINEL);
    }
  });

  it('needs the context in the query, checks it against the key\'s scope, and names both body types on a 415', async () => {
    const missing = await postArrow('/v1/pseudonymize', '', stream(['x']));
    expect(missing.status).toBe(400);
    expect(missing.problem!.detail).toBe('context: is required');
    const badVersion = await postArrow('/v1/reidentify', 'context=vin&keyVersion=0', stream(['x']), { apiKey: api.keys.reidentify });
    expect(badVersion.status).toBe(400);
    const outOfScope = await postArrow('/v1/pseudonymize', 'context=email', stream(['x']), { apiKey: api.keys.vinOnly });
    expect(outOfScope.status).toBe(403);
    const wrongRole = await postArrow('/v1/reidentify', 'context=vin', stream(['x']));
    expect(wrongRole.status).toBe(403);
    const other = await postArrow('/v1/pseudonymize', 'context=vin', Buffer.from('x'), { contentType: 'text/plain' });
    expect(other.status).toBe(415);
    expect(other.problem!.detail).toBe(`send the body as application/json or ${ARROW}`);
    const compat = await postArrow('/pseudonymization', '', stream(['x']));
    expect(compat.status).toBe(415);
    expect(compat.problem!.detail).toBe('send the body as application/json');
  });

  it('applies the same limits: values per request (400) and body bytes (413)', async () => {
    await withTestService({ PSEUDO_MAX_VALUES: '3', PSEUDO_MAX_BODY_BYTES: '2048' }, async (small) => {
      const many = await postArrow('/v1/pseudonymize', 'context=vin', stream(['a', 'b', 'c', 'd']), { url: small.url, apiKey: small.keys.pseudonymize });
      expect(many.status).toBe(400);
      expect(many.problem!.detail).toBe('values: at most 3 items per request');
      const large = await postArrow('/v1/pseudonymize', 'context=vin', stream([SENTINEL.repeat(200)]), { url: small.url, apiKey: small.keys.pseudonymize });
      expect(large.status).toBe(413);
      expect(large.problem!.type).toBe('urn:pseudonymization:problem:payload-too-large');
      expect(small.logs()).not.toContain(SENTINEL);
    });
    expect(api.logs()).not.toContain(SENTINEL);
    expect(api.logs()).not.toContain(ERASED_EMAIL);
  });
});
