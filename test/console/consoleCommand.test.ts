/** `npm run console` answers --help with its usage and examples (exit 0) and refuses an unknown argument (exit 2), before starting anything. */
import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';

function run(args: readonly string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('node_modules/.bin/tsx', ['scripts/console.ts', ...args], (error, stdout, stderr) => {
      resolve({ status: error ? Number(error.code) : 0, stdout, stderr });
    });
  });
}

describe('npm run console', () => {
  it('prints its usage with examples for --help and exits 0', async () => {
    const result = await run(['--help']);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('usage: npm run console');
    expect(result.stdout).toContain('examples:');
  });

  it('refuses an unknown argument with its usage and exits 2', async () => {
    const result = await run(['--frobnicate']);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('usage: npm run console');
    expect(result.stdout).toBe('');
  });
});
