/**
 * The compliance officers' console at /console: three static files (index.html, console.js, console.css) that
 * `npm run build` writes to dist/console (and into the Lambda zip, as console/), served with headers that keep
 * the page to its own origin by both transports: the Express server (`consoleMiddleware`) and the API Lambda
 * (lambda/handler.ts, through `consoleAnswer`). The console is a client of the API like any other (it signs in
 * with /v1/login and calls the /v1 routes with the bearer token), so no rule lives here: only which bytes go out,
 * and under which headers.
 *
 * Only the files found in the folder at start are served, from memory, by exact name: no path is ever joined
 * with what the caller sent. Without a built console, /console answers a problem saying how to build it.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NextFunction, Request, Response } from 'express';
import { RequestError } from '../errors.ts';
import { problemResponse } from './problem.ts';
import type { CoreResponse } from './types.ts';

export const CONSOLE_PATH = '/console';

/**
 * No inline script or style, no eval, nothing from another origin, never in a frame. `form-action 'none'`: the
 * console submits with fetch, so a form that would post (and put field values into a URL or a request body the
 * page did not build) is refused by the browser.
 */
export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Headers on every console answer. `no-cache`: the file names are not hashed, so a browser asks again each time. */
export const CONSOLE_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=()',
  'cache-control': 'no-cache',
};

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

interface ConsoleFile {
  /** Text files as text (a Lambda answers text as is, bytes as base64), anything else as bytes. */
  readonly body: string | Buffer;
  readonly contentType: string;
}

/** The console's files by name, read once. */
export type ConsoleFiles = ReadonlyMap<string, ConsoleFile>;

/**
 * The built console: beside the bundle that runs (dist/server.mjs → dist/console; the Lambda's handler.mjs and
 * its chunks → console/ in the task root), or dist/console under the repository when the code runs from its
 * sources (tests, tsx).
 */
function consoleFolder(): string | undefined {
  const candidates = [fileURLToPath(new URL('./console/', import.meta.url)), fileURLToPath(new URL('../../dist/console/', import.meta.url))];
  return candidates.find((folder) => existsSync(join(folder, 'index.html')));
}

/** Reads the console's files into memory: none when it is not built. */
export function loadConsoleFiles(folder = consoleFolder()): ConsoleFiles {
  const files = new Map<string, ConsoleFile>();
  if (!folder) return files;
  for (const name of readdirSync(folder)) {
    const contentType = CONTENT_TYPES[extname(name)];
    if (!contentType) continue;
    const bytes = readFileSync(join(folder, name));
    files.set(name, { body: contentType.includes('charset=utf-8') ? bytes.toString('utf8') : bytes, contentType });
  }
  return files;
}

/** True for /console and everything under it: the paths the console answers instead of the API. */
export function isConsolePath(path: string): boolean {
  return path === CONSOLE_PATH || path.startsWith(`${CONSOLE_PATH}/`);
}

function withConsoleHeaders(status: number, headers: Readonly<Record<string, string>>, body: string | Buffer, method: string): CoreResponse {
  return { status, headers: { ...CONSOLE_HEADERS, ...headers }, body: method === 'HEAD' ? '' : body };
}

/**
 * The answer to a request under /console (GET and HEAD; 405 otherwise), for either transport; undefined for any
 * other path, which goes on to the API.
 */
export function consoleAnswer(files: ConsoleFiles, method: string, path: string): CoreResponse | undefined {
  if (!isConsolePath(path)) return undefined;
  if (method !== 'GET' && method !== 'HEAD') {
    const problem = problemResponse(new RequestError('method-not-allowed', 'use GET'), randomUUID());
    return withConsoleHeaders(problem.status, { ...problem.headers, allow: 'GET, HEAD' }, problem.body, method);
  }
  // One page: the console routes by the URL's fragment (#/requests/…), which never reaches a server. The redirect is
  // relative, so that it keeps whatever prefix the API is reached under (an API Gateway stage: /api/console → /api/console/).
  if (path === CONSOLE_PATH) return withConsoleHeaders(308, { location: 'console/' }, '', method);
  const name = path.slice(CONSOLE_PATH.length + 1) || 'index.html';
  const file = files.get(name);
  if (!file) {
    const problem = problemResponse(new RequestError('not-found', files.size === 0 ? 'the console is not built: run npm run build' : 'no such console file'), randomUUID());
    return withConsoleHeaders(problem.status, problem.headers, problem.body, method);
  }
  return withConsoleHeaders(200, { 'content-type': file.contentType, 'content-length': String(Buffer.byteLength(file.body)) }, file.body, method);
}

/** Express middleware answering GET/HEAD under /console; everything else goes on to the API. */
export function consoleMiddleware(folder = consoleFolder()): (request: Request, response: Response, next: NextFunction) => void {
  const files = loadConsoleFiles(folder);
  return (request, response, next) => {
    const answer = consoleAnswer(files, request.method, request.path);
    if (!answer) {
      next();
      return;
    }
    response.status(answer.status);
    for (const [name, value] of Object.entries(answer.headers)) response.setHeader(name, value);
    response.end(request.method === 'HEAD' ? undefined : answer.body);
  };
}
