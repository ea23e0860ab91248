/**
 * Metrics on Lambda: with AWS_LAMBDA_FUNCTION_NAME set, the handler writes CloudWatch Embedded Metric Format
 * lines on stdout (Powertools Metrics), flushed at the end of each invocation, with bounded dimensions only.
 * Run in child processes as the runtime would, against the sources (through tsx) and against the built bundle
 * (dist/lambda/handler.mjs from the global set-up, so Powertools must be in it).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiKeyRegistry } from '../../api/auth/apiKeys.ts';
import { apiKeyDocumentsFor } from '../../api/auth/fromConfig.ts';
import { bootstrapLocal } from '../../api/bootstrap.ts';
import { loadConfig } from '../../api/config/config.ts';
import { ConfigError } from '../../api/errors.ts';
import { EMF_METRIC_NAMES } from '../../api/observability/emf.ts';
import { createLogger } from '../../api/observability/logger.ts';
import { testConfig } from '../support/service.ts';

const work = mkdtempSync(join(tmpdir(), 'lambda-emf-'));
const dataDir = join(work, 'data');
const SENTINEL_VALUE = 'sentinel-7c1f9a@example.com';
const SENTINEL_CONTEXT = 'sentinel-context-55e2';
let apiKey = '';

beforeAll(async () => {
  const config = testConfig(dataDir);
  await bootstrapLocal(config, createLogger('silent'));
  const registry = new ApiKeyRegistry(apiKeyDocumentsFor(config.apiKeys));
  apiKey = (await registry.create('spark', ['pseudonymize'], undefined)).key;
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

const template = JSON.parse(readFileSync('test/fixtures/lambda/http-api-v2.json', 'utf8')) as APIGatewayProxyEventV2;

function event(path: string, body: unknown): APIGatewayProxyEventV2 {
  return {
    ...template,
    rawPath: `/prod${path}`,
    headers: { ...template.headers, 'x-api-key': apiKey },
    requestContext: { ...template.requestContext, http: { ...template.requestContext.http, path: `/prod${path}` } },
    body: JSON.stringify(body),
  };
}

/** Imports the handler module once, as the runtime does, hands it each event in turn, and exits. */
const DRIVER = `
const events = JSON.parse(process.env.DRIVER_EVENTS);
const module = await import(process.env.DRIVER_MODULE);
for (const event of events) await module.handler(event);
`;

/** What the function wrote on stdout (its log lines and the EMF documents). */
function runHandler(moduleUrl: string, events: APIGatewayProxyEventV2[], cwd: string, extraArgs: string[] = []): string {
  return execFileSync(process.execPath, [...extraArgs, '--input-type=module', '-e', DRIVER], {
    cwd,
    env: {
      PATH: process.env.PATH,
      AWS_LAMBDA_FUNCTION_NAME: 'pseudonymization-api',
      AWS_REGION: 'eu-west-1',
      PSEUDO_DATA_DIR: dataDir,
      PSEUDO_POLICY_FILE: resolve('test/fixtures/policies.json'),
      PSEUDO_LOG_LEVEL: 'info',
      PSEUDO_METRICS_NAMESPACE: 'PseudoTest',
      PSEUDO_METRICS_SERVICE: 'pseudo-test',
      DRIVER_MODULE: moduleUrl,
      DRIVER_EVENTS: JSON.stringify(events),
    },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

interface EmfDocument {
  readonly _aws: { readonly Timestamp: number; readonly CloudWatchMetrics: { readonly Namespace: string; readonly Dimensions: string[][]; readonly Metrics: { Name: string; Unit: string }[] }[] };
  readonly [field: string]: unknown;
}

function emfLines(stdout: string): EmfDocument[] {
  return stdout
    .split('\n')
    .filter((line) => line.includes('"_aws"'))
    .map((line) => JSON.parse(line) as EmfDocument);
}

const entryPoints = [
  { name: 'sources (tsx)', module: () => new URL('../../lambda/handler.ts', import.meta.url).href, cwd: () => process.cwd(), args: ['--import', 'tsx'] },
  { name: 'built bundle', module: () => new URL('../../dist/lambda/handler.mjs', import.meta.url).href, cwd: () => resolve('dist/lambda'), args: [] },
];

describe.each(entryPoints)('EMF metrics on Lambda: $name', (entry) => {
  let documents: EmfDocument[] = [];
  let stdout = '';

  beforeAll(() => {
    const events = [
      event('/v1/pseudonymize', { context: 'email', values: [SENTINEL_VALUE, 'b@example.com'] }),
      event('/v1/pseudonymize', { context: SENTINEL_CONTEXT, values: [SENTINEL_VALUE] }),
    ];
    stdout = runHandler(entry.module(), events, entry.cwd(), entry.args);
    documents = emfLines(stdout);
  }, 60_000);

  it('writes EMF documents in the configured namespace with the request and value metrics', () => {
    expect(documents.length).toBeGreaterThan(0);
    for (const document of documents) {
      expect(document._aws.CloudWatchMetrics[0]!.Namespace).toBe('PseudoTest');
      expect(document.service).toBe('pseudo-test');
    }
    const requests = documents.filter((document) => document.route === '/v1/pseudonymize');
    // One request document per invocation: flushed at the end of each.
    expect(requests).toHaveLength(2);
    expect(requests.map((document) => document.status).sort()).toEqual(['200', '400'].sort());
    for (const document of requests) {
      const names = document._aws.CloudWatchMetrics[0]!.Metrics.map((metric) => metric.Name);
      expect(names).toEqual(expect.arrayContaining([EMF_METRIC_NAMES.requests, EMF_METRIC_NAMES.duration]));
      expect(document._aws.CloudWatchMetrics[0]!.Dimensions).toEqual([expect.arrayContaining(['service', 'route', 'method', 'status'])]);
      expect(document.method).toBe('POST');
    }
    const values = documents.filter((document) => document.operation === 'pseudonymize');
    expect(values).toHaveLength(1);
    expect(values[0]).toMatchObject({ context: 'email', [EMF_METRIC_NAMES.values]: 2 });
  });

  it('never puts a value, an unknown context, a path or the API key in a metric line', () => {
    const lines = stdout.split('\n').filter((line) => line.includes('"_aws"'));
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      expect(line).not.toContain(SENTINEL_VALUE);
      expect(line).not.toContain(SENTINEL_CONTEXT);
      expect(line).not.toContain('/prod');
      expect(line).not.toContain(apiKey);
    }
    // The rest of stdout (the request log lines) does not hold the value either.
    expect(stdout).not.toContain(SENTINEL_VALUE);
  });
});

describe('the dashboard in the template', () => {
  const platform = readFileSync('infra/cloudformation/platform.yaml', 'utf8');

  it('reads the metric names the EMF sink writes, in the namespace and service the API function is given', () => {
    const charted = new Set([...platform.matchAll(/MetricName=\\"(\w+)\\"/g)].map((match) => match[1]!));
    expect([...charted].sort()).toEqual([EMF_METRIC_NAMES.requests, EMF_METRIC_NAMES.duration, EMF_METRIC_NAMES.values, EMF_METRIC_NAMES.erasureRuns, EMF_METRIC_NAMES.erasureRunFailures].sort());
    expect(platform).toMatch(/^ {10}PSEUDO_METRICS_NAMESPACE: Pseudonymization$/m);
    expect(platform).toMatch(/^ {10}PSEUDO_METRICS_SERVICE: !Sub '\$\{EnvironmentName\}-pseudonymization-api'$/m);
    for (const search of platform.matchAll(/SEARCH\('\{(\w+),/g)) expect(search[1]).toBe('Pseudonymization');
  });
});

describe('the metrics settings', () => {
  it('default to the Pseudonymization namespace and refuse a namespace CloudWatch would not take, naming the key', () => {
    expect(loadConfig({}).metrics).toEqual({ namespace: 'Pseudonymization', service: 'pseudonymization-api' });
    for (const [key, value] of [
      ['PSEUDO_METRICS_NAMESPACE', 'has spaces'],
      ['PSEUDO_METRICS_SERVICE', 'a/b'],
    ] as const) {
      const thrown = (() => {
        try {
          loadConfig({ [key]: value });
        } catch (error) {
          return error;
        }
        return undefined;
      })();
      expect(thrown).toBeInstanceOf(ConfigError);
      expect((thrown as ConfigError).key).toBe(key);
      expect((thrown as ConfigError).message).not.toContain(value);
    }
  });
});
