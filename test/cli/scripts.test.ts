/**
 * The scripts people run by hand answer --help with their usage and examples and exit 0, and refuse an argument
 * they do not know with the usage and exit 2, before doing any work (set-up installs nothing, verify:siv
 * compares nothing, build bundles nothing, npm start serves nothing, npm test runs nothing).
 *
 * Set-up's progress (issue 16, item 19): each step says on stderr that it starts and when it is done, with its
 * time and what it left, and a second run says every step is up to date. Run in a scratch root holding copies of
 * the files set-up hashes, where npm, mvn, apt-get, python3 -m venv and the venv's pip are stand-ins that install
 * nothing: the real node_modules, venv and jars are never touched, and it takes seconds.
 */
import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

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
  // As npm runs it (the system Python, set-up only after the arguments are read): --help answers before any set-up.
  ['npm run local-stack (its package.json line)', 'npm', ['run', '--silent', 'local-stack', '--'], 'usage: npm run local-stack'],
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

describe('npm run setup: progress', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'setup-progress-'));
  afterAll(() => {
    rmSync(scratch, { recursive: true, force: true });
  });

  /** A stand-in command: records its arguments in installs.log and runs `then` (shell), nothing else. */
  function standIn(path: string, then = ''): void {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, `#!/bin/sh\necho "$(basename "$0") $*" >> ${JSON.stringify(join(scratch, 'installs.log'))}\n${then}\n`);
    chmodSync(path, 0o755);
  }

  function setUp(): Promise<{ status: number; stdout: string; stderr: string; installs: string[] }> {
    const log = join(scratch, 'installs.log');
    rmSync(log, { force: true });
    return new Promise((resolve) => {
      execFile('bash', [join(scratch, 'root', 'scripts', 'setup.sh')], { env: { ...process.env, PATH: `${join(scratch, 'bin')}:${process.env.PATH ?? ''}` } }, (error, stdout, stderr) => {
        const installs = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [];
        resolve({ status: error ? Number(error.code) : 0, stdout, stderr, installs });
      });
    });
  }

  it('says what each step does and how long it took, and on a second run that every step is up to date', async () => {
    const root = join(scratch, 'root');
    for (const file of ['scripts/setup.sh', 'package-lock.json', 'requirements-test.txt', 'spark-udfs/jars/pom.xml', 'spark-udfs/pyproject.toml', 'stream-consumer/pyproject.toml']) {
      mkdirSync(dirname(join(root, file)), { recursive: true });
      copyFileSync(file, join(root, file));
    }
    // What the steps leave, as the real tools would: the lockfile npm ci records, a jar, the venv's python and pip.
    mkdirSync(join(root, 'node_modules'), { recursive: true });
    writeFileSync(join(root, 'node_modules', '.package-lock.json'), JSON.stringify({ packages: { 'node_modules/a': {}, 'node_modules/b': {} } }));
    mkdirSync(join(root, '.cache', 'jars'), { recursive: true });
    writeFileSync(join(root, '.cache', 'jars', 'iceberg.jar'), '');
    for (const command of ['npm', 'apt-get']) standIn(join(scratch, 'bin', command));
    // Maven's stand-in leaves a jar where it is told to; python3 answers --version for real (set-up hashes it).
    standIn(join(scratch, 'bin', 'mvn'), 'for a in "$@"; do case "$a" in -DoutputDirectory=*) mkdir -p "${a#*=}" && : > "${a#*=}/stand-in.jar" ;; esac; done');
    const python3 = spawnSync('bash', ['-c', 'command -v python3'], { encoding: 'utf8' }).stdout.trim();
    writeFileSync(join(scratch, 'bin', 'python3'), `#!/bin/sh\nif [ "$1" = --version ]; then exec ${python3} --version; fi\necho "python3 $*" >> ${JSON.stringify(join(scratch, 'installs.log'))}\n`);
    chmodSync(join(scratch, 'bin', 'python3'), 0o755);
    for (const command of ['python', 'pip']) standIn(join(root, '.venv', 'bin', command));
    // The Node 22 the tests also run on, as if fetched before: its tarball is checked against a pinned sha512, which
    // no stand-in can give (CI's real set-up fetches it, and test/api/process.test.ts runs it).
    mkdirSync(join(root, '.cache', 'node22', 'bin'), { recursive: true });
    writeFileSync(join(root, '.cache', 'node22', 'bin', 'node'), '#!/bin/sh\necho v22.23.3\n');
    chmodSync(join(root, '.cache', 'node22', 'bin', 'node'), 0o755);

    const first = await setUp();
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toBe('');
    expect(first.installs).toEqual(expect.arrayContaining([expect.stringMatching(/^npm ci /), expect.stringMatching(/^mvn /), 'python3 -m venv .venv', expect.stringMatching(/^pip install /)]));
    for (const step of ['installing Node packages (npm ci)', 'fetching the Iceberg and SQLite JDBC jars with Maven (.cache/jars)', 'creating the Python venv (.venv) with both packages and the test tools']) {
      expect(first.stderr).toContain(`setup: ${step} …\n`);
      expect(first.stderr).toMatch(new RegExp(`^setup: ${step.replace(/[().]/g, '\\$&')}: done in \\d+ s, .+$`, 'm'));
    }
    expect(first.stderr).toMatch(/^setup: installing Node packages \(npm ci\): done in \d+ s, 2 packages, \d+ MB$/m);
    expect(first.stderr).toMatch(/^setup: ready in \d+ s$/m);

    const second = await setUp();
    expect(second.status, second.stderr).toBe(0);
    expect(second.stdout).toBe('');
    // Nothing installed again (Debian packages aside: a machine without one asks apt-get every time).
    expect(second.installs.filter((line) => !line.startsWith('apt-get '))).toEqual([]);
    for (const step of ['Node packages (node_modules)', 'jars (.cache/jars)', 'Python venv (.venv)', 'Node 22 for the tests (.cache/node22)']) expect(second.stderr).toContain(`setup: ${step}: up to date\n`);
    expect(second.stderr).toMatch(/^setup: ready in \d+ s$/m);
  });
});
