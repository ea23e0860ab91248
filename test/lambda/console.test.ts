/**
 * The compliance officers' console on Lambda: the API function answers /console/* itself, from the files the zip
 * carries in console/, with the headers the Express server sends (api/http/console.ts), on both payload formats
 * and behind a stage. First through the handler's sources (the console built into dist/console by the global
 * set-up), then through the built zip, unzipped into a task root of its own and imported by `node` from there as
 * the runtime would: the bundle finds its console/ folder beside itself.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { APIGatewayProxyEvent, APIGatewayProxyEventV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSOLE_HEADERS } from '../../api/http/console.ts';

let handlers: typeof import('../../lambda/handler.ts');
const work = mkdtempSync(join(tmpdir(), 'lambda-console-'));

beforeAll(async () => {
  handlers = await import('../../lambda/handler.ts');
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

const v1Template = JSON.parse(readFileSync('test/fixtures/lambda/rest-api-v1.json', 'utf8')) as APIGatewayProxyEvent;
const v2Template = JSON.parse(readFileSync('test/fixtures/lambda/http-api-v2.json', 'utf8')) as APIGatewayProxyEventV2;

/** A browser's GET (or another method) as API Gateway hands it over: REST API 1.0 and HTTP API 2.0 behind stage "prod". */
function restEvent(method: string, path: string): APIGatewayProxyEvent {
  return {
    ...v1Template,
    httpMethod: method,
    path,
    pathParameters: { proxy: path.slice(1) },
    headers: { Accept: 'text/html', Host: 'api.example.com' },
    multiValueHeaders: {},
    queryStringParameters: null,
    body: null,
    isBase64Encoded: false,
    requestContext: { ...v1Template.requestContext, httpMethod: method, path: `/prod${path}` },
  };
}

function httpEvent(method: string, path: string): APIGatewayProxyEventV2 {
  return {
    ...v2Template,
    rawPath: `/prod${path}`,
    rawQueryString: '',
    headers: { accept: 'text/html', host: 'api.example.com' },
    body: undefined,
    isBase64Encoded: false,
    requestContext: { ...v2Template.requestContext, http: { ...v2Template.requestContext.http, method, path: `/prod${path}` } },
  };
}

interface Answer {
  readonly statusCode: number;
  readonly headers: Record<string, string>;
  readonly body: string;
  readonly isBase64Encoded?: boolean;
}

const builtIndex = readFileSync('dist/console/index.html', 'utf8');
const builtScript = readFileSync('dist/console/console.js', 'utf8');

/** What every console answer must carry, whichever transport sent it. */
function expectConsoleHeaders(answer: Answer): void {
  for (const [name, value] of Object.entries(CONSOLE_HEADERS)) expect(answer.headers[name], name).toBe(value);
  const csp = answer.headers['content-security-policy'] ?? '';
  for (const directive of ["default-src 'self'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"]) expect(csp).toContain(directive);
  expect(csp).not.toMatch(/unsafe-(inline|eval)/);
}

/** The page, its script, the redirect, a 404 and a 405, through one way of invoking the handler. */
async function checkConsole(invoke: (format: 'v1' | 'v2', method: string, path: string) => Promise<Answer>): Promise<void> {
  for (const format of ['v1', 'v2'] as const) {
    const page = await invoke(format, 'GET', '/console/');
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expectConsoleHeaders(page);
    // Text as text: API Gateway passes it on untouched (no BinaryMediaTypes entry needed).
    expect(page.isBase64Encoded).toBe(false);
    expect(page.body).toBe(builtIndex);

    const script = await invoke(format, 'GET', '/console/console.js');
    expect(script.statusCode).toBe(200);
    expect(script.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expectConsoleHeaders(script);
    expect(script.body).toBe(builtScript);
    expect(Number(script.headers['content-length'])).toBe(Buffer.byteLength(builtScript));

    const styles = await invoke(format, 'GET', '/console/console.css');
    expect(styles.headers['content-type']).toBe('text/css; charset=utf-8');

    // Relative, so that the browser stays under the stage: /prod/console → /prod/console/.
    const redirect = await invoke(format, 'GET', '/console');
    expect(redirect.statusCode).toBe(308);
    expect(redirect.headers.location).toBe('console/');

    const head = await invoke(format, 'HEAD', '/console/');
    expect(head.statusCode).toBe(200);
    expect(head.body).toBe('');

    for (const path of ['/console/nope.js', '/console/../lambda/handler.ts', '/console/%2e%2e/package.json']) {
      const missing = await invoke(format, 'GET', path);
      expect(missing.statusCode, path).toBe(404);
      expect(missing.headers['content-type']).toContain('application/problem+json');
      expectConsoleHeaders(missing);
    }
    const post = await invoke(format, 'POST', '/console/');
    expect(post.statusCode).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
  }
}

describe('the console through the Lambda handler', () => {
  it('answers /console/ with the page, the script and the stylesheet under the console headers, on both payload formats', async () => {
    await checkConsole(async (format, method, path) => {
      const result = format === 'v1' ? await handlers.restApiHandler(restEvent(method, path)) : await handlers.httpApiHandler(httpEvent(method, path));
      return { statusCode: result.statusCode!, headers: result.headers as Record<string, string>, body: result.body!, isBase64Encoded: result.isBase64Encoded };
    });
  });

  it('the built zip carries the console and its handler serves it from there', async () => {
    const listing = execFileSync('unzip', ['-Z1', resolve('dist/lambda.zip')], { encoding: 'utf8' }).split('\n').filter(Boolean);
    expect(listing).toEqual(expect.arrayContaining(['console/index.html', 'console/console.js', 'console/console.css']));
    const taskRoot = join(work, 'task');
    execFileSync('unzip', ['-q', resolve('dist/lambda.zip'), '-d', taskRoot]);
    // The repository's dist/ is out of reach from there: what answers can only come from the zip.
    expect(resolve(taskRoot).startsWith(resolve('.'))).toBe(false);
    const events = (['v1', 'v2'] as const).flatMap((format) =>
      ['/console/', '/console/console.js', '/console/console.css', '/console', '/console/nope.js', '/console/../lambda/handler.ts', '/console/%2e%2e/package.json'].flatMap((path) =>
        ['GET', 'HEAD', 'POST'].map((method) => ({ format, method, path, event: format === 'v1' ? restEvent(method, path) : httpEvent(method, path) })),
      ),
    );
    const driver = `
      import { pathToFileURL } from 'node:url';
      const module = await import(pathToFileURL(process.cwd() + '/handler.mjs').href);
      const events = JSON.parse(process.argv[1]);
      const answers = [];
      for (const event of events) answers.push(await module.handler(event));
      process.stdout.write(JSON.stringify(answers));
    `;
    const output = execFileSync(process.execPath, ['--input-type=module', '-e', driver, JSON.stringify(events.map((e) => e.event))], {
      cwd: taskRoot,
      encoding: 'utf8',
      env: { PATH: process.env.PATH, LAMBDA_TASK_ROOT: taskRoot, PSEUDO_LOG_LEVEL: 'silent' },
      maxBuffer: 64 * 1024 * 1024,
    });
    const answers = JSON.parse(output) as Answer[];
    const byCall = new Map(events.map((e, i) => [`${e.format} ${e.method} ${e.path}`, answers[i]!]));
    await checkConsole((format, method, path) => {
      const answer = byCall.get(`${format} ${method} ${path}`);
      if (!answer) throw new Error(`no answer recorded for ${format} ${method} ${path}`);
      return Promise.resolve(answer);
    });
  });
});
