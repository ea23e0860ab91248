/**
 * The real service over real HTTP on 127.0.0.1 for tests: a temporary data folder, the test
 * policy file, API keys for each role, and every log line captured for the privacy checks.
 * Each response from `call` is checked against the OpenAPI document.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiKeyRegistry, type Role } from '../../api/auth/apiKeys.ts';
import { bootstrapLocal } from '../../api/bootstrap.ts';
import { loadConfig, type Config } from '../../api/config/config.ts';
import { createLogger } from '../../api/observability/logger.ts';
import { startServer, type RunningServer } from '../../api/server.ts';
import { apiKeyDocumentsFor } from '../../api/auth/fromConfig.ts';
import { assertMatchesOpenApi, documentedPaths } from './openapi.ts';

export interface TestKeys {
  pseudonymize: string;
  reidentify: string;
  /** pseudonymize, scoped to the vin context only */
  vinOnly: string;
}

export interface CallOptions {
  body?: unknown;
  rawBody?: string | Buffer;
  apiKey?: string;
  contentType?: string | null;
  headers?: Record<string, string>;
}

export interface CallResult {
  status: number;
  headers: Headers;
  text: string;
  json: unknown;
}

export interface TestService {
  readonly url: string;
  readonly config: Config;
  readonly dataDir: string;
  readonly running: RunningServer;
  readonly keys: TestKeys;
  logs(): string;
  call(method: string, path: string, options?: CallOptions): Promise<CallResult>;
  createKey(name: string, roles: Role[], contexts?: string[]): Promise<string>;
  close(): Promise<void>;
}

export function testConfig(dataDir: string, env: Record<string, string> = {}): Config {
  return loadConfig({
    PSEUDO_DATA_DIR: dataDir,
    PSEUDO_PORT: '0',
    PSEUDO_POLICY_FILE: 'test/fixtures/policies.json',
    PSEUDO_API_KEYS_REFRESH_SECONDS: '1',
    ...env,
  });
}

export async function call(url: string, method: string, path: string, options: CallOptions = {}): Promise<CallResult> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.apiKey !== undefined) headers['x-api-key'] = options.apiKey;
  let body: string | Buffer | undefined = options.rawBody;
  if (options.body !== undefined) body = JSON.stringify(options.body);
  if (options.contentType !== null && body !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
  const response = await fetch(url + path, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : new Uint8Array(body) });
  const text = await response.text();
  const contentType = response.headers.get('content-type') ?? '';
  const json: unknown = contentType.includes('json') ? JSON.parse(text) : undefined;
  const template = documentedTemplate(path.split('?')[0]!);
  if (template !== undefined && response.status !== 405) {
    assertMatchesOpenApi(method, template, response.status, contentType, json ?? text);
  }
  return { status: response.status, headers: response.headers, text, json };
}

/** The documented path a concrete path belongs to ({name} matches one segment). */
function documentedTemplate(path: string): string | undefined {
  if (documentedPaths.includes(path)) return path;
  return documentedPaths.find((template) => template.includes('{') && new RegExp(`^${template.replace(/\{\w+\}/g, '[^/]+')}$`).test(path));
}

export async function startTestService(env: Record<string, string> = {}): Promise<TestService> {
  const dataDir = mkdtempSync(join(tmpdir(), 'pseudo-test-'));
  const config = testConfig(dataDir, env);
  const lines: string[] = [];
  const logger = createLogger('trace', { write: (line: string) => void lines.push(line) });
  await bootstrapLocal(config, logger);
  const registry = new ApiKeyRegistry(apiKeyDocumentsFor(config.apiKeys));
  const createKey = async (name: string, roles: Role[], contexts?: string[]): Promise<string> => (await registry.create(name, roles, contexts)).key;
  const keys: TestKeys = {
    pseudonymize: await createKey('spark', ['pseudonymize']),
    reidentify: await createKey('steward', ['reidentify']),
    vinOnly: await createKey('vin-only', ['pseudonymize'], ['vin']),
  };
  let running: RunningServer;
  try {
    running = await startServer(config, { logger });
  } catch (error) {
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
  return {
    url: running.url,
    config,
    dataDir,
    running,
    keys,
    logs: () => lines.join(''),
    call: (method, path, options) => call(running.url, method, path, options),
    createKey,
    close: async () => {
      await running.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Runs `use` against a service started with these settings, and always stops it. */
export async function withTestService<T>(env: Record<string, string>, use: (service: TestService) => Promise<T>): Promise<T> {
  const service = await startTestService(env);
  try {
    return await use(service);
  } finally {
    await service.close();
  }
}
