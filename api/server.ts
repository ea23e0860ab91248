/**
 * The Express transport: reads the body as bytes (up to the configured limit), hands the request
 * to the service core and writes back what it answers. No rule lives here.
 *
 * Run directly (npm start) it loads the config, bootstraps the embedded defaults, and serves on
 * PSEUDO_HOST:PSEUDO_PORT with PSEUDO_WORKERS processes (node:cluster), stopping gracefully on
 * SIGTERM/SIGINT.
 */
import cluster from 'node:cluster';
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type NextFunction, type Request, type Response } from 'express';
import { bootstrapLocal } from './bootstrap.ts';
import { loadConfig, type Config } from './config/config.ts';
import { RequestError } from './errors.ts';
import { recordRequest } from './http/handler.ts';
import { problemResponse } from './http/problem.ts';
import type { CoreRequest, CoreResponse } from './http/types.ts';
import { createLogger } from './observability/logger.ts';
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
  app.use(express.raw({ type: () => true, limit: service.config.limits.maxBodyBytes }));
  app.use((request: Request, response: Response, next: NextFunction) => {
    service.handle(toCoreRequest(request)).then((core) => send(response, core), next);
  });
  app.use((error: unknown, _request: Request, response: Response, _next: NextFunction) => {
    const requestId = randomUUID();
    const core = problemResponse(bodyErrorToProblem(error), requestId);
    core.headers['x-request-id'] = requestId;
    recordRequest(service, { requestId, route: 'unread-body', method: 'other', status: core.status, seconds: 0, values: 0 });
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
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      service.close();
    },
  };
}

/** The process entry (api/main.ts): config, bootstrap, workers, signals. */
export async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger(config.logLevel);
  if (cluster.isPrimary) await bootstrapLocal(config, logger);
  if (cluster.isPrimary && config.workers > 1) {
    let erasureWorkerId = cluster.fork({ PSEUDO_ERASURE_WORKER_PROCESS: 'true' }).id;
    for (let i = 1; i < config.workers; i++) cluster.fork();
    let stopping = false;
    cluster.on('exit', (worker, code) => {
      if (stopping) return;
      logger.error({ workerPid: worker.process.pid, code }, 'worker exited; starting a new one');
      if (worker.id === erasureWorkerId) erasureWorkerId = cluster.fork({ PSEUDO_ERASURE_WORKER_PROCESS: 'true' }).id;
      else cluster.fork();
    });
    const stop = (): void => {
      stopping = true;
      for (const worker of Object.values(cluster.workers ?? {})) worker?.kill('SIGTERM');
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    logger.info({ workers: config.workers, host: config.host, port: config.port }, 'started workers');
    return;
  }
  // One process runs the erasure worker: the only one, or the worker the primary forked for it.
  const running = await startServer(config, { logger, erasureWorker: cluster.isPrimary || process.env.PSEUDO_ERASURE_WORKER_PROCESS === 'true' });
  logger.info({ url: running.url, keyring: config.keyring.provider, ready: running.service.ready }, 'listening');
  const stop = (signal: string): void => {
    logger.info({ signal }, 'stopping: draining in-flight requests');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    running.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}
