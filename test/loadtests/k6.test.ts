/**
 * The k6 scenarios and their local runner. k6 itself cannot run here: the scripts are type-checked by
 * `npx tsc -p .` (they reference @types/k6), their options are checked as data, and the local runner runs the
 * same scenario definitions with --quick against a server it starts (node dist/server.mjs, built by the global
 * set-up). Behaviour only: every scenario sent requests and none failed; latency is the benchmark's business.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { BATCH_SIZE, batchValues, k6Options, requestBody, scenarios } from '../../load-tests/k6/scenarios.ts';

const run = promisify(execFile);
const work = mkdtempSync(join(tmpdir(), 'k6-local-test-'));
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('the scenario definitions', () => {
  it('cover the six scenarios, each with a k6 script of its own', () => {
    const names = scenarios().map((scenario) => scenario.name);
    expect(names).toEqual(['pseudonymize', 'reidentify', 'compat', 'mixed', 'spike', 'soak']);
    const scripts = readdirSync('load-tests/k6').filter((file) => !['scenarios.ts', 'lib.ts'].includes(file));
    expect(scripts.sort()).toEqual(names.map((name) => `${name}.ts`).sort());
    for (const name of names) expect(readFileSync(`load-tests/k6/${name}.ts`, 'utf8')).toContain(`iterationFor('${name}')`);
  });

  it('give k6 the targets as thresholds: p99 under 50 ms and no failed request', () => {
    for (const scenario of scenarios()) {
      expect(k6Options(scenario).thresholds).toEqual({ http_req_duration: ['p(99)<50'], http_req_failed: ['rate==0'] });
    }
  });

  it('send 900-value batches, the same on every run, distinct within a batch', () => {
    const batch = batchValues(3);
    expect(batch).toHaveLength(BATCH_SIZE);
    expect(new Set(batch).size).toBe(BATCH_SIZE);
    expect(batchValues(3)).toEqual(batch);
    expect(JSON.parse(requestBody('compat', batch))).toEqual({ identifiers: batch });
  });

  it('make the soak as long as asked', () => {
    const soak = scenarios({ seconds: 30, soakMinutes: 10 }).find((scenario) => scenario.name === 'soak')!;
    expect(soak.stages.reduce((sum, stage) => sum + stage.seconds, 0)).toBe(600);
    expect(soak.watchMemory).toBe(true);
  });
});

interface RunnerResult {
  readonly name: string;
  readonly requests: number;
  readonly errors: number;
  readonly errorsMet: boolean;
  readonly rss?: { readonly samples: number; readonly startBytes: number };
}

describe('npm run bench:k6-local -- --quick', () => {
  it('runs every scenario against a server it started, with no failed request, and samples the soak server\'s memory', async () => {
    const json = join(work, 'results.json');
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.BASE_URL;
    const { stdout } = await run('node_modules/.bin/tsx', ['load-tests/k6-local.ts', '--quick', '--json', json], { env, timeout: 240_000, maxBuffer: 16 * 1024 * 1024 });
    const { quick, results } = JSON.parse(readFileSync(json, 'utf8')) as { quick: boolean; results: RunnerResult[] };
    expect(quick).toBe(true);
    expect(results.map((result) => result.name)).toEqual(['pseudonymize', 'reidentify', 'compat', 'mixed', 'spike', 'soak']);
    for (const result of results) {
      expect(result.requests, result.name).toBeGreaterThan(0);
      expect(result.errors, result.name).toBe(0);
      expect(result.errorsMet, result.name).toBe(true);
    }
    const soak = results.find((result) => result.name === 'soak')!;
    expect(soak.rss?.samples).toBeGreaterThan(1);
    expect(soak.rss?.startBytes).toBeGreaterThan(0);
    // The printed table states machine, command and date.
    expect(stdout).toMatch(/^date: /m);
    expect(stdout).toMatch(/^machine: /m);
    expect(stdout).toContain('command: npm run bench:k6-local -- --quick');
  }, 300_000);

  it('refuses an unknown scenario with the usage and exit 2', async () => {
    const failure = await run('node_modules/.bin/tsx', ['load-tests/k6-local.ts', '--only', 'nope'], { timeout: 60_000 }).then(
      () => undefined,
      (error: unknown) => error as { code: number; stderr: string },
    );
    expect(failure?.code).toBe(2);
    expect(failure?.stderr).toContain('usage: npm run bench:k6-local');
  }, 60_000);
});
