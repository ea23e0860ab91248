/**
 * On Lambda the request's one log line carries API Gateway's request id and the invocation's id beside the
 * platform's own requestId, so a line can be found from API Gateway's access log or the function's REPORT line.
 */
import { readFileSync } from 'node:fs';
import type { APIGatewayProxyEvent, APIGatewayProxyEventV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromHttpApiEvent, fromRestApiEvent } from '../../lambda/handler.ts';
import { startTestService, type TestService } from '../support/service.ts';

const rest = JSON.parse(readFileSync('test/fixtures/lambda/rest-api-v1.json', 'utf8')) as APIGatewayProxyEvent;
const http = JSON.parse(readFileSync('test/fixtures/lambda/http-api-v2.json', 'utf8')) as APIGatewayProxyEventV2;

describe('request ids in the Lambda log line', () => {
  let service: TestService;
  beforeAll(async () => {
    service = await startTestService();
  });
  afterAll(async () => service.close());

  function lineWith(invocationId: string): Record<string, unknown> {
    const lines = service.logs().split('\n').filter((line) => line.includes(invocationId));
    expect(lines).toHaveLength(1);
    return JSON.parse(lines[0]!) as Record<string, unknown>;
  }

  it('REST API payload 1.0: requestContext.requestId and the invocation id', async () => {
    const request = { ...fromRestApiEvent({ ...rest, httpMethod: 'GET', path: '/readyz', body: null }), invocationId: 'invocation-rest-1' };
    expect((await service.running.service.handle(request)).status).toBe(200);
    expect(lineWith('invocation-rest-1')).toMatchObject({ msg: 'request', gatewayRequestId: rest.requestContext.requestId, invocationId: 'invocation-rest-1' });
  });

  it('HTTP API payload 2.0: requestContext.requestId and the invocation id', async () => {
    const event = { ...http, rawPath: '/readyz', body: undefined, requestContext: { ...http.requestContext, http: { ...http.requestContext.http, method: 'GET' } } };
    const request = { ...fromHttpApiEvent(event), invocationId: 'invocation-http-1' };
    expect((await service.running.service.handle(request)).status).toBe(200);
    expect(lineWith('invocation-http-1')).toMatchObject({ msg: 'request', gatewayRequestId: http.requestContext.requestId, invocationId: 'invocation-http-1' });
  });
});
