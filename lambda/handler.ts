/**
 * AWS Lambda handlers over the same service core as the Express server:
 *   restApiHandler  API Gateway REST API, proxy integration (payload format 1.0)
 *   httpApiHandler  API Gateway HTTP API (payload format 2.0)
 *   handler         either, told apart by the event's `version` field
 *
 * The service (config, policies, keyring unwrapped with KMS) is built once per cold start, in the
 * init phase; a warm invocation only translates the event and calls `handle`. Loading the module
 * never throws, whatever the configuration: a start that fails is logged (error class and code, the
 * setting's name, never values; lambda/_start.ts), answered with a 503 problem naming the cause (`config-invalid`,
 * `keyring-unavailable`: a keyring that does not load is a failed start here, `ledger-unavailable`), and tried
 * again on the next invocation. Events are
 * never logged. On Lambda the service's metrics also go to CloudWatch as EMF lines (api/observability/emf.ts),
 * flushed at the end of each invocation; /metrics stays the server's.
 *
 * /console/* is the compliance officers' console, answered from the files the zip carries in console/ with the
 * same headers as the Express server (api/http/console.ts), before and without the service: on the API's own
 * origin and stage, so that the page's `'self'` policy covers its calls to /v1.
 */
import type { APIGatewayProxyEvent, APIGatewayProxyEventV2, APIGatewayProxyResult, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { loadConfig } from '../api/config/config.ts';
import { consoleAnswer, isConsolePath, loadConsoleFiles, type ConsoleFiles } from '../api/http/console.ts';
import { KeyringError } from '../api/errors.ts';
import { problemResponse } from '../api/http/problem.ts';
import type { CoreRequest, CoreResponse } from '../api/http/types.ts';
import { EmfMetricsSink } from '../api/observability/emf.ts';
import { PseudonymizationService } from '../api/service.ts';
import { logStartFailure, startFailure } from './_start.ts';

let servicePromise: Promise<PseudonymizationService> | undefined;
/** The console's files, read at the first /console request of this execution environment. */
let consoleFiles: ConsoleFiles | undefined;
/** The EMF sink of this execution environment, once the service has started on Lambda. */
let emfSink: EmfMetricsSink | undefined;

/**
 * Set by the Lambda runtime in every execution environment. There each instance has its own /tmp, so erasure
 * state on local files (a SQLite ledger, a jdbc catalog) is refused at start (config-invalid naming the setting);
 * tests that load this module in their own process run the adapter without it.
 */
const ON_LAMBDA = process.env.AWS_LAMBDA_FUNCTION_NAME !== undefined;

/** The service of this execution environment; a failed start is retried on the next invocation. */
export function service(): Promise<PseudonymizationService> {
  // Async all the way: loadConfig throws synchronously, and that must reject, not throw at module load.
  servicePromise ??= (async () => {
    const config = loadConfig();
    const started = await PseudonymizationService.start(config, { sharedStoresOnly: ON_LAMBDA });
    // Without keys every call would answer 503 until the refresh timer, which runs only while an invocation keeps
    // the environment thawed, loads them: a failed start instead is tried again at the next invocation.
    if (!started.ready) {
      started.close();
      throw new KeyringError('the keyring could not be loaded', 'keyring-unavailable');
    }
    if (ON_LAMBDA) {
      emfSink = new EmfMetricsSink(config.metrics);
      started.metrics.addSink(emfSink);
    }
    return started;
  })().catch((error: unknown) => {
    servicePromise = undefined;
    throw error;
  });
  return servicePromise;
}

function lowerCaseHeaders(headers: Record<string, string | undefined> | null | undefined): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(headers ?? {})) out[name.toLowerCase()] = value;
  return out;
}

function decodeBody(body: string | null | undefined, isBase64Encoded: boolean): Buffer | undefined {
  if (body === null || body === undefined) return undefined;
  return Buffer.from(body, isBase64Encoded ? 'base64' : 'utf8');
}

function queryOf(parameters: Record<string, string | undefined> | null | undefined): Record<string, string | undefined> {
  return { ...(parameters ?? {}) };
}

export function fromRestApiEvent(event: APIGatewayProxyEvent): CoreRequest {
  return {
    method: event.httpMethod.toUpperCase(),
    path: event.path,
    query: queryOf(event.queryStringParameters),
    headers: lowerCaseHeaders(event.headers),
    body: decodeBody(event.body, event.isBase64Encoded),
    clientAddress: event.requestContext.identity.sourceIp,
    gatewayRequestId: event.requestContext.requestId,
  };
}

export function fromHttpApiEvent(event: APIGatewayProxyEventV2): CoreRequest {
  // rawPath includes the stage unless it is $default; routes are matched without it.
  const stage = event.requestContext.stage;
  const stagePrefix = stage && stage !== '$default' ? `/${stage}` : '';
  const path = stagePrefix && event.rawPath.startsWith(`${stagePrefix}/`) ? event.rawPath.slice(stagePrefix.length) : event.rawPath;
  return {
    method: event.requestContext.http.method.toUpperCase(),
    path,
    query: queryOf(event.queryStringParameters),
    headers: lowerCaseHeaders(event.headers),
    body: decodeBody(event.body, event.isBase64Encoded),
    clientAddress: event.requestContext.http.sourceIp,
    gatewayRequestId: event.requestContext.requestId,
  };
}

async function respond(request: CoreRequest): Promise<CoreResponse> {
  if (isConsolePath(request.path)) {
    consoleFiles ??= loadConsoleFiles();
    const answer = consoleAnswer(consoleFiles, request.method, request.path);
    if (answer) return answer;
  }
  let running: PseudonymizationService;
  try {
    running = await service();
  } catch (error) {
    logStartFailure('the service', error);
    return problemResponse(startFailure(error), 'cold-start');
  }
  try {
    return await running.handle(request);
  } finally {
    emfSink?.flush();
  }
}

/**
 * API Gateway carries text: an answer in bytes (an Arrow IPC stream) goes as base64, which API Gateway turns back
 * into bytes (REST API: when the type is among the API's BinaryMediaTypes, infra/cloudformation/platform.yaml).
 * Requests of that type arrive base64-encoded in the same way (decodeBody).
 */
function resultBody(response: CoreResponse): { body: string; isBase64Encoded: boolean } {
  return typeof response.body === 'string' ? { body: response.body, isBase64Encoded: false } : { body: response.body.toString('base64'), isBase64Encoded: true };
}

export async function restApiHandler(event: APIGatewayProxyEvent, context?: Pick<Context, 'awsRequestId'>): Promise<APIGatewayProxyResult> {
  const response = await respond({ ...fromRestApiEvent(event), invocationId: context?.awsRequestId });
  return { statusCode: response.status, headers: response.headers, ...resultBody(response) };
}

export async function httpApiHandler(event: APIGatewayProxyEventV2, context?: Pick<Context, 'awsRequestId'>): Promise<APIGatewayProxyStructuredResultV2> {
  const response = await respond({ ...fromHttpApiEvent(event), invocationId: context?.awsRequestId });
  return { statusCode: response.status, headers: response.headers, ...resultBody(response) };
}

export async function handler(event: APIGatewayProxyEvent | APIGatewayProxyEventV2): Promise<APIGatewayProxyResult | APIGatewayProxyStructuredResultV2> {
  return 'version' in event && event.version === '2.0' ? httpApiHandler(event) : restApiHandler(event as APIGatewayProxyEvent);
}

// Start in the init phase of a cold start (it gets the boosted CPU); a failure is logged and answered
// by the first invocation, which tries again.
if (ON_LAMBDA) void service().catch(() => undefined);
