/**
 * Argument handling shared by the benchmark and conformance scripts (STYLE rule 20): `--help` / `-h` prints the
 * usage and exits 0 before anything runs; an unknown option or a malformed value prints what is wrong and the
 * usage on stderr and exits 2. Exit 1 stays the script's own: a failed run.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** What `--help` says: usage line, what the script measures, how long it takes, options, examples. */
export interface Help {
  readonly usage: string;
  readonly measures: string;
  readonly duration: string;
  readonly options?: readonly (readonly [string, string])[];
  readonly environment?: readonly (readonly [string, string])[];
  /** What exit 1 means for this script, when more specific than 'the run failed'. */
  readonly failure?: string;
  readonly examples: readonly string[];
}

export function helpText(help: Help): string {
  const rows = (title: string, entries: readonly (readonly [string, string])[]): string[] => {
    const width = Math.max(...entries.map(([name]) => name.length));
    return [title, ...entries.map(([name, text]) => `  ${name.padEnd(width)}  ${text}`)];
  };
  return [
    `usage: ${help.usage}`,
    '',
    help.measures,
    `takes: ${help.duration}`,
    '',
    ...rows('options:', [...(help.options ?? []), ['-h, --help', 'print this help and exit']]),
    ...(help.environment === undefined ? [] : ['', ...rows('environment:', help.environment)]),
    '',
    'examples:',
    ...help.examples.map((example) => `  ${example}`),
    '',
    `exit status: 0 done, 1 ${help.failure ?? 'the run failed'}, 2 usage error`,
  ].join('\n');
}

/** Prints the message and the usage on stderr and exits 2. */
export function usageError(help: Help, message: string): never {
  console.error(`${message}\n\n${helpText(help)}`);
  process.exit(2);
}

/**
 * Parses argv against `config` (strict: unknown options and stray positionals are usage errors unless the config
 * allows them). `--help` exits 0 with the help text; any parse error exits 2.
 */
export function parseCli<const T extends ParseArgsConfig>(help: Help, config: T, argv: string[] = process.argv.slice(2)): ReturnType<typeof parseArgs<T>> {
  try {
    const withHelp: ParseArgsConfig = { ...config, args: argv, options: { ...config.options, help: { type: 'boolean', short: 'h' } } };
    if (parseArgs(withHelp).values.help === true) {
      console.log(helpText(help));
      process.exit(0);
    }
    return parseArgs<T>({ ...config, args: argv });
  } catch (error) {
    usageError(help, error instanceof Error ? error.message : 'bad arguments');
  }
}

/** A positive number from an option's text, or `fallback` when the option is absent; otherwise a usage error. */
export function positiveNumber(help: Help, name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) usageError(help, `--${name} must be a positive number`);
  return value;
}
