/**
 * Arrow IPC bodies through the Lambda handlers: API Gateway hands a binary media type to the function base64-encoded
 * (REST API BinaryMediaTypes; HTTP API always for non-text), and the Arrow answer goes back base64-encoded with
 * isBase64Encoded, which API Gateway turns into bytes. The answer is the one the JSON body gets.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { APIGatewayProxyEvent, APIGatewayProxyEventV2 } from 'aws-lambda';
import { Table, tableFromIPC, tableToIPC, Utf8, vectorFromArray } from 'apache-arrow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiKeyRegistry } from '../../api/auth/apiKeys.ts';
import { apiKeyDocumentsFor } from '../../api/auth/fromConfig.ts';
import { bootstrapLocal } from '../../api/bootstrap.ts';
import { createLogger } from '../../api/observability/logger.ts';
import { testConfig } from '../support/service.ts';

const ARROW = 'application/vnd.apache.arrow.stream';
const VALUES = ['1HGCM82633A004352', null, 'jänë@example.com', ''];
const dataDir = mkdtempSync(join(tmpdir(), 'lambda-arrow-'));
const env = { PSEUDO_DATA_DIR: dataDir, PSEUDO_POLICY_FILE: 'test/fixtures/policies.json', PSEUDO_LOG_LEVEL: 'silent' };
let handlers: typeof import('../../lambda/handler.ts');
let apiKey = '';

beforeAll(async () => {
  const config = testConfig(dataDir, env);
  await bootstrapLocal(config, createLogger('silent'));
  apiKey = (await new ApiKeyRegistry(apiKeyDocumentsFor(config.apiKeys)).create('spark', ['pseudonymize'], undefined)).key;
  // The handler reads its configuration from the environment, as in Lambda.
  Object.assign(process.env, env);
  handlers = await import('../../lambda/handler.ts');
});
afterAll(async () => {
  (await handlers.service()).close();
  rmSync(dataDir, { recursive: true, force: true });
});

const v1Template = JSON.parse(readFileSync('test/fixtures/lambda/rest-api-v1.json', 'utf8')) as APIGatewayProxyEvent;
const v2Template = JSON.parse(readFileSync('test/fixtures/lambda/http-api-v2.json', 'utf8')) as APIGatewayProxyEventV2;

interface Call {
  query: Record<string, string>;
  headers: Record<string, string>;
  body: Buffer;
}

/** The template's headers but those each call sets itself. */
function withoutCallerHeaders(headers: Record<string, string | undefined>): Record<string, string | undefined> {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !['x-api-key', 'content-type', 'accept'].includes(name.toLowerCase())));
}

function restEvent(call: Call): APIGatewayProxyEvent {
  const headers = withoutCallerHeaders(v1Template.headers);
  return {
    ...v1Template,
    httpMethod: 'POST',
    path: '/v1/pseudonymize',
    pathParameters: { proxy: 'v1/pseudonymize' },
    headers: { ...headers, ...call.headers },
    queryStringParameters: call.query,
    body: call.body.toString('base64'),
    isBase64Encoded: true,
    requestContext: { ...v1Template.requestContext, httpMethod: 'POST', path: '/prod/v1/pseudonymize' },
  };
}

function httpEvent(call: Call): APIGatewayProxyEventV2 {
  const headers = withoutCallerHeaders(v2Template.headers);
  return {
    ...v2Template,
    rawPath: '/prod/v1/pseudonymize',
    rawQueryString: new URLSearchParams(call.query).toString(),
    queryStringParameters: call.query,
    headers: { ...headers, ...call.headers },
    body: call.body.toString('base64'),
    isBase64Encoded: true,
    requestContext: { ...v2Template.requestContext, http: { ...v2Template.requestContext.http, method: 'POST', path: '/prod/v1/pseudonymize' } },
  };
}

const arrowCall = (accept: string): Call => ({
  query: { context: 'vin' },
  headers: { 'x-api-key': apiKey, 'content-type': ARROW, accept },
  body: Buffer.from(tableToIPC(new Table({ values: vectorFromArray(VALUES, new Utf8()) }), 'stream')),
});
const jsonCall = (): Call => ({ query: {}, headers: { 'x-api-key': apiKey, 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify({ context: 'vin', values: VALUES })) });

describe.each([
  { name: 'REST API payload 1.0', invoke: async (call: Call) => handlers.restApiHandler(restEvent(call)) },
  { name: 'HTTP API payload 2.0', invoke: async (call: Call) => handlers.httpApiHandler(httpEvent(call)) },
])('Arrow through the Lambda handler, $name', ({ invoke }) => {
  it('takes a base64 Arrow body and answers base64 Arrow, equal to the JSON answer', async () => {
    const json = await invoke(jsonCall());
    expect(json.isBase64Encoded).toBe(false);
    const expected = JSON.parse(json.body!) as { pseudonyms: (string | null)[]; keyVersion: number };
    const answer = await invoke(arrowCall(ARROW));
    expect(answer.statusCode).toBe(200);
    expect(answer.isBase64Encoded).toBe(true);
    expect(answer.headers!['content-type']).toBe(ARROW);
    expect(answer.headers!['pseudo-key-version']).toBe(String(expected.keyVersion));
    const table = tableFromIPC(Buffer.from(answer.body!, 'base64'));
    expect([...(table.getChild('pseudonyms')!.toArray() as (string | null)[])]).toEqual(expected.pseudonyms);
    expect([...(table.getChild('reason')!.toArray() as (string | null)[])]).toEqual(VALUES.map(() => null));
  });

  it('answers a text problem (not base64) to a malformed stream, and JSON when Arrow is not accepted', async () => {
    const malformed = await invoke({ ...arrowCall(ARROW), body: Buffer.from('not arrow at all') });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.isBase64Encoded).toBe(false);
    expect((JSON.parse(malformed.body!) as { type: string }).type).toBe('urn:pseudonymization:problem:malformed-arrow');
    const asJson = await invoke(arrowCall('application/json'));
    expect(asJson.isBase64Encoded).toBe(false);
    expect(asJson.body).toBe((await invoke(jsonCall())).body);
  });
});
