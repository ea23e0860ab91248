/**
 * The Express transport: reads the body as bytes (up to the route's limit), hands the request
 * to the service core and writes back what it answers. No rule lives here. The process around it
 * (workers, signals) is api/main.ts.
 */
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Config } from './config/config.ts';
import { RequestError } from './errors.ts';
import { consoleMiddleware } from './http/console.ts';
import { bodyLimitFor, recordRequest } from './http/handler.ts';
import { problemResponse } from './http/problem.ts';
import type { CoreRequest, CoreResponse } from './http/types.ts';
import { PseudonymizationService, type ServiceOptions } from './service.ts';

function toCoreRequest(request: Request): CoreRequest {
  const headers: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(request.headers)) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  const query: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(request.query as Record<string, unknown>)) {
    const first: unknown = Array.isArray(value) ? value[0] : value;
    if (typeof first === 'string') query[name] = first;
  }
  return { method: request.method, path: request.path, query, headers, body: Buffer.isBuffer(request.body) ? request.body : undefined, clientAddress: request.socket.remoteAddress };
}

function send(response: Response, core: CoreResponse): void {
  response.status(core.status);
  for (const [name, value] of Object.entries(core.headers)) response.setHeader(name, value);
  response.end(core.body);
}

/** body-parser's own failures (too large, bad encoding) as the same problem types the core uses. */
function bodyErrorToProblem(error: unknown): RequestError {
  const type = typeof error === 'object' && error !== null && 'type' in error ? String(error.type) : '';
  if (type === 'entity.too.large') return new RequestError('payload-too-large', 'the body is larger than the limit');
  if (type === 'encoding.unsupported' || type === 'charset.unsupported') return new RequestError('unsupported-media-type', 'unsupported content encoding');
  return new RequestError('validation-failed', 'the body could not be read');
}

export function createApp(service: PseudonymizationService): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  // The console's static files (api/http/console.ts), before any body is read: they are only ever GET.
  app.use(consoleMiddleware());
  // The route's own limit, not the largest one: a 6 MB body sent to sign-in is refused after a few KB (413), unread.
  const readers = new Map<number, express.RequestHandler>();
  app.use((request: Request, response: Response, next: NextFunction) => {
    const limit = bodyLimitFor(service, request.method, request.path);
    let reader = readers.get(limit);
    if (!reader) {
      reader = express.raw({ type: () => true, limit });
      readers.set(limit, reader);
    }
    reader(request, response, next);
  });
  app.use((request: Request, response: Response, next: NextFunction) => {
    service.handle(toCoreRequest(request)).then((core) => {
      send(response, core);
    }, next);
  });
  // Express tells error middleware apart by its four parameters, so the unused `_next` must stay.
  app.use((error: unknown, _request: Request, response: Response, _next: NextFunction) => {
    const requestId = randomUUID();
    const core = problemResponse(bodyErrorToProblem(error), requestId);
    core.headers['x-request-id'] = requestId;
    recordRequest(service, { requestId, route: 'unread-body', method: 'other', status: core.status, seconds: 0, valueCount: 0 });
    send(response, core);
  });
  return app;
}

export interface RunningServer {
  readonly service: PseudonymizationService;
  readonly server: Server;
  readonly url: string;
  close(): Promise<void>;
}

/** Starts the service and an HTTP server for it; `close` drains in-flight requests first. */
export async function startServer(config: Config, options: ServiceOptions = {}): Promise<RunningServer> {
  const service = await PseudonymizationService.start(config, options);
  const server = createApp(service).listen(config.port, config.host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  // Node answers header fields over its limit itself, with an empty body: say it as a problem+json like every other
  // refusal. Other unparseable requests get Node's own answer (408 on a timeout, else 400), as without this listener.
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    if (error.code !== 'HPE_HEADER_OVERFLOW') {
      socket.end(`HTTP/1.1 ${error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request'}\r\nConnection: close\r\n\r\n`);
      return;
    }
    const requestId = randomUUID();
    const core = problemResponse(new RequestError('headers-too-large', 'the request header fields are larger than the server reads'), requestId);
    recordRequest(service, { requestId, route: 'unread-request', method: 'other', status: core.status, seconds: 0, valueCount: 0 });
    const headers = Object.entries({ ...core.headers, 'x-request-id': requestId, 'content-length': String(Buffer.byteLength(core.body)), connection: 'close' });
    socket.end(`HTTP/1.1 431 Request Header Fields Too Large\r\n${headers.map(([name, value]) => `${name}: ${value}\r\n`).join('')}\r\n${core.body}`);
  });
  // Longer than load balancers' idle timeouts, so they close keep-alive connections first.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  const { port } = server.address() as AddressInfo;
  return {
    service,
    server,
    url: `http://${config.host}:${port}`,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
        server.closeIdleConnections();
      });
      service.close();
    },
  };
}
