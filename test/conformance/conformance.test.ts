import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';

const runner = ['node_modules/.bin/tsx', 'test/conformance/wycheproof.ts'] as const;
const work = mkdtempSync(join(tmpdir(), 'conformance-'));
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('conformance command', () => {
  it('passes every Wycheproof AES-SIV and FF1 vector and the NIST FF1 samples', () => {
    const out = execFileSync(runner[0], [runner[1]], { encoding: 'utf8' });
    const last = out.trim().split('\n').at(-1)!;
    const [, passed, failed] = /^conformance: (\d+) passed, (\d+) failed, (\d+) skipped$/.exec(last) ?? [];
    expect(Number(failed)).toBe(0);
    expect(Number(passed)).toBeGreaterThanOrEqual(9600);
    expect(out).toContain('aes_siv_cmac_test.json.gz: 442 passed, 0 failed');
  });

  it('fails, and says which case, when a vector does not hold', () => {
    const file = JSON.parse(gunzipSync(readFileSync('test/fixtures/wycheproof/aes_siv_cmac_test.json.gz')).toString('utf8')) as {
      testGroups: { tests: { tcId: number; ct: string; result: string }[] }[];
    };
    const test = file.testGroups[0]!.tests[0]!;
    test.ct = (test.ct.startsWith('0') ? '1' : '0') + test.ct.slice(1);
    const path = join(work, 'tampered_test.json');
    writeFileSync(path, JSON.stringify(file));
    const result = spawnSync(runner[0], [runner[1], path], { encoding: 'utf8' });
    expect(result.status).toBe(1);
    expect(result.stdout).toContain(`FAILED tcId ${test.tcId}`);
    expect(result.stdout.trim().split('\n').at(-1)).toBe('conformance: 441 passed, 1 failed, 0 skipped');
  });
});
