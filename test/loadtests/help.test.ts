// Every benchmark and conformance entry users run through npm (package.json: bench, bench:*, conformance) behaves
// like a CLI (STYLE rule 20): `--help` prints a usage and exits 0 without starting a run, an unknown option exits 2
// with the usage. The entries come from package.json, so a new bench script is covered (or fails here) by itself.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

interface Entry {
  readonly script: string;
  readonly program: string;
  readonly file: string;
}

/** The program and file an npm script finally runs: its last `&&` step, `tsx FILE` or `.venv/bin/python FILE`. */
function entries(): Entry[] {
  const { scripts } = JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> };
  return Object.entries(scripts)
    .filter(([name]) => name === 'bench' || name.startsWith('bench:') || name === 'conformance')
    .map(([script, command]) => {
      const last = command.split('&&').at(-1)?.trim() ?? '';
      const [runner, file] = last.split(/\s+/);
      if (runner === 'tsx') return { script, program: 'node_modules/.bin/tsx', file: file ?? '' };
      if (runner === '.venv/bin/python') return { script, program: '.venv/bin/python', file: file ?? '' };
      throw new Error(`${script}: runs neither tsx nor .venv/bin/python`);
    });
}

interface Outcome {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs to the end and returns the exit code with the output; a generous timeout so a loaded machine does not decide. */
async function outcome(entry: Entry, argument: string): Promise<Outcome> {
  try {
    const { stdout, stderr } = await run(entry.program, [entry.file, argument], { timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number | string; stdout?: string; stderr?: string };
    return { code: typeof failed.code === 'number' ? failed.code : -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

const all = entries();

describe('benchmark and conformance CLIs', () => {
  it('covers every bench script and the conformance runner', () => {
    expect(all.map((entry) => entry.script)).toEqual(expect.arrayContaining(['bench', 'bench:engine', 'bench:http', 'bench:spark', 'bench:rekey', 'bench:maintenance', 'bench:k6-local', 'conformance']));
  });

  it.each(all)('$script: --help prints the usage and exits 0; an unknown option exits 2 with the usage', async (entry) => {
    const [help, unknown] = await Promise.all([outcome(entry, '--help'), outcome(entry, '--no-such-option')]);
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^usage: /m);
    expect(help.stdout).toMatch(/^examples:$/m);
    expect(unknown.code, unknown.stderr).toBe(2);
    expect(unknown.stderr).toMatch(/^usage: /m);
    // Nothing ran: no benchmark header (every run prints its date and machine first).
    expect(`${help.stdout}${unknown.stdout}`).not.toMatch(/^date: /m);
  }, 300_000);
});
