/**
 * The engine's optional native addons (native/*.c, built by `npm run build` into dist/native/*.node when a C
 * compiler is there). Each one calls the OpenSSL inside the running node binary, never one of its own, and has a
 * JavaScript twin that gives the same bytes; the twin serves wherever the addon is not built, does not load
 * (another architecture: the Lambda functions run on arm64 and dist/lambda.zip carries no addon) or fails its
 * known-answer check against the twin.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * Where an addon lies relative to this module: dist/server.mjs and dist/cli.mjs (./native), the Lambda bundles in
 * dist/lambda (../native), and this source file under tsx or vitest (the repository's dist/native).
 */
const CANDIDATE_DIRECTORIES = import.meta.url.endsWith('.ts') ? ['../../dist/native/'] : ['./native/', '../native/'];

/** What became of each addon asked for: for the start-up log line and the benchmarks. */
const outcomes = new Map<string, 'loaded' | 'absent' | 'failed'>();
/** Each addon looked for, by file: the module, or null when none was usable. Looked for once per process. */
const found = new Map<string, unknown>();

/**
 * The addon `file` (e.g. "aes_siv.node") when one is there, loads, and `answersKnownValues` accepts it; otherwise
 * undefined. Looked for on the first call only (callers ask per batch); never throws: a failed load means the
 * JavaScript path.
 */
export function loadAddon<T>(file: string, answersKnownValues: (addon: T) => boolean): T | undefined {
  if (found.has(file)) return (found.get(file) ?? undefined) as T | undefined;
  const addon = searchAddon(file, answersKnownValues);
  found.set(file, addon ?? null);
  return addon;
}

function searchAddon<T>(file: string, answersKnownValues: (addon: T) => boolean): T | undefined {
  const requireAddon = createRequire(import.meta.url);
  let outcome: 'absent' | 'failed' = 'absent';
  for (const directory of CANDIDATE_DIRECTORIES) {
    const path = fileURLToPath(new URL(directory + file, import.meta.url));
    if (!existsSync(path)) continue;
    try {
      const addon = requireAddon(path) as T;
      if (answersKnownValues(addon)) {
        outcomes.set(file, 'loaded');
        return addon;
      }
    } catch {
      // Another architecture, or a node whose OpenSSL symbols are not exported: the next candidate, then JavaScript.
    }
    outcome = 'failed';
  }
  outcomes.set(file, outcome);
  return undefined;
}

/** Each addon looked for so far and what became of it, e.g. { "aes_siv.node": "loaded" }. */
export function nativeAddons(): Record<string, string> {
  return Object.fromEntries(outcomes);
}
