/**
 * The scripts people run by hand answer --help with their usage and examples and exit 0, and refuse an argument
 * they do not know with the usage and exit 2, before doing any work (set-up installs nothing, verify:siv
 * compares nothing, build bundles nothing, npm start serves nothing, npm test runs nothing).
 */
import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';

function run(command: string, args: readonly string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, [...args], (error, stdout, stderr) => {
      resolve({ status: error ? Number(error.code) : 0, stdout, stderr });
    });
  });
}

const scripts = [
  ['npm run setup', 'bash', ['scripts/setup.sh'], 'usage: npm run setup'],
  ['npm run verify:siv', 'node_modules/.bin/tsx', ['scripts/verify-siv.ts'], 'usage: npm run verify:siv'],
  ['npm run verify:ff1', 'node_modules/.bin/tsx', ['scripts/verify-ff1.ts'], 'usage: npm run verify:ff1'],
  ['npm run build', 'node_modules/.bin/tsx', ['scripts/build.ts'], 'usage: npm run build'],
  ['npm run package', 'node_modules/.bin/tsx', ['scripts/package.ts'], 'usage: npm run package'],
  ['npm run local-stack', '.venv/bin/python', ['scripts/local-stack.py'], 'usage: npm run local-stack'],
  ['npm start', 'node_modules/.bin/tsx', ['api/main.ts'], 'usage: npm start'],
  ['npm test', 'bash', ['scripts/test.sh'], 'usage: npm test'],
] as const;

describe.each(scripts)('%s', (_name, command, script, usage) => {
  it('prints its usage with examples for --help and exits 0', async () => {
    const result = await run(command, [...script, '--help']);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain(usage);
    expect(result.stdout).toContain('examples:');
  });

  it('refuses an unknown argument with its usage and exits 2', async () => {
    const result = await run(command, [...script, '--frobnicate']);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(usage);
    expect(result.stdout).toBe('');
  });
});
