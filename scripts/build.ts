/**
 * `npm run build`: bundles the server, the admin CLI and the Lambda functions with esbuild into dist/, and zips
 * the Lambda bundle for upload (Debian's zip). Prints each bundle's size.
 *
 * dist/lambda.zip holds everything a function reads, nothing from the repository layout:
 *   handler.mjs      the API (handler.handler, handler.restApiHandler, handler.httpApiHandler)
 *   erasureStep.mjs  the scheduled erasure step (erasureStep.erasureStepHandler)
 *   chunk-*.mjs      code both share (the service core, the AWS SDK clients: DynamoDB, EMR, S3, KMS, ...)
 *   config/policies.json  the default PSEUDO_POLICY_FILE (relative to the task root, /var/task)
 *   console/         the compliance officers' console (a copy of dist/console), which the API function serves at /console
 * dist/console holds the compliance officers' console (index.html, console.js, console.css), served at /console.
 * node-sqlite3-wasm is not in it: on Lambda a SQLite ledger or jdbc catalog is refused at start (each instance
 * has its own /tmp), so the module is never loaded there. A deployment's table registry goes next to the policy
 * file (`zip -u dist/lambda.zip config/…`) with PSEUDO_ERASURE_REGISTRY_FILE naming it.
 * dist/native/keyed_hash.node, aes_siv.node and ff1.node are the engine's addons (native/*.c), compiled with the
 * machine's C compiler against node's own headers; without a compiler or headers the build says so in one line and
 * goes on (the keyed hash then runs one createHmac per value, AES-SIV pseudonyms and FF1's rounds in JavaScript).
 * They are not in the zip: the functions run on arm64 and use those fallbacks.
 *
 * Takes no options but --help (usage, exit 0, nothing built); anything else is a usage error (exit 2).
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, realpathSync, renameSync, rmSync, statSync, utimesSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { build } from 'esbuild';
import { parseCli, type Help } from '../load-tests/cli.ts';

const HELP: Help = {
  usage: 'npm run build   (or tsx scripts/build.ts)',
  measures:
    'Bundles the server (dist/server.mjs), the admin CLI (dist/cli.mjs), the console (dist/console/) and the Lambda\n' +
    'functions (dist/lambda/, zipped as dist/lambda.zip) with esbuild; prints each bundle\'s size. npm start, npm test\n' +
    'and the benchmarks that start dist/server.mjs build first; the Spark wheels are npm run package.',
  duration: 'under a minute',
  failure: 'a bundle or the zip failed',
  examples: ['npm run build', 'npm run build && unzip -l dist/lambda.zip'],
};
// Before anything is built: --help answers and exits 0, an unknown argument exits 2.
parseCli(HELP, { options: {}, allowPositionals: false });

const out = 'dist';
const lambdaDir = join(out, 'lambda');
const zipFile = join(out, 'lambda.zip');

// Bundled ESM still meets CommonJS packages (express) that call require().
const banner = { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" };
// node-sqlite3-wasm loads its .wasm from its own folder: it stays in node_modules (see api/erasure/_sqlite.ts).
const common = { bundle: true, platform: 'node', format: 'esm', target: 'node20', sourcemap: true, legalComments: 'none', banner } as const;
const external = ['node-sqlite3-wasm'];

await build({ ...common, external, entryPoints: { server: 'api/main.ts', cli: 'api/cli.ts' }, outdir: out, outExtension: { '.js': '.mjs' } });
// The compliance officers' console (console/, served at /console by the Express server): one script, one
// stylesheet and the page, for browsers. Everything is in these files; the page loads nothing from elsewhere.
const consoleDir = join(out, 'console');
await build({ entryPoints: { console: 'console/src/main.ts' }, bundle: true, platform: 'browser', format: 'esm', target: 'es2022', minify: true, sourcemap: false, legalComments: 'none', outdir: consoleDir });
cpSync('console/index.html', join(consoleDir, 'index.html'));
cpSync('console/console.css', join(consoleDir, 'console.css'));
// Old chunks would otherwise ride along in the zip.
rmSync(lambdaDir, { recursive: true, force: true });
await build({
  ...common,
  external,
  entryPoints: { handler: 'lambda/handler.ts', erasureStep: 'lambda/erasureStep.ts' },
  outdir: lambdaDir,
  outExtension: { '.js': '.mjs' },
  splitting: true,
  minify: true,
  // The start-failure log line names the error's class: minified names would say "Tt".
  keepNames: true,
  sourcemap: false,
});
mkdirSync(join(lambdaDir, 'config'), { recursive: true });
cpSync('config/policies.json', join(lambdaDir, 'config/policies.json'));
cpSync(consoleDir, join(lambdaDir, 'console'), { recursive: true });

rmSync(zipFile, { force: true });
// The same sources give the same zip: every entry gets one fixed time (zip stores mtimes), entries in sorted order.
// Otherwise each build is a new artifact, and each deploy uploads it again and updates the functions.
const FIXED_TIME = new Date('2026-01-01T00:00:00Z');
const entries = readdirSync(lambdaDir, { recursive: true, encoding: 'utf8' }).sort();
for (const entry of entries) utimesSync(join(lambdaDir, entry), FIXED_TIME, FIXED_TIME);
// From inside the folder, so that the zip's paths are the task root's (handler.mjs, config/policies.json).
execFileSync('zip', ['-q', '-X', '-D', relative(lambdaDir, zipFile), ...entries.filter((entry) => statSync(join(lambdaDir, entry)).isFile())], { cwd: lambdaDir });

// The engine's addons (api/engine/_native.ts): the keyed hash's needs OpenSSL's SHA-256 resumed from saved HMAC
// states, which node:crypto has no API for; the AES-SIV and FF1 ones move the per-value work of a batch (of a
// deterministic batch, of each Feistel round) out of JavaScript. Their OpenSSL symbols resolve against the node binary
// at load time, so nothing is linked; node's headers match the OpenSSL inside it. Each is compiled beside its place and renamed into it, so that a server or
// test loading it while another build runs never reads half a file; when a compile fails, a stale addon from older
// source is removed.
const ADDONS = [
  { name: 'keyed_hash', fallback: 'the keyed hash falls back to one createHmac per value' },
  { name: 'aes_siv', fallback: 'deterministic AES-SIV pseudonyms fall back to JavaScript' },
  { name: 'ff1', fallback: 'FF1 rounds fall back to JavaScript' },
];
// The running node's own headers first (they match its OpenSSL), then the distribution's.
const nodeHeaders = [join(dirname(dirname(realpathSync(process.execPath))), 'include', 'node'), '/usr/include/node'].find(
  (dir) => existsSync(join(dir, 'node_api.h')) && existsSync(join(dir, 'openssl', 'sha.h')),
);
const builtAddons: string[] = [];
for (const { name, fallback } of ADDONS) {
  const addon = join(out, 'native', `${name}.node`);
  const beingBuilt = `${addon}.${process.pid}.tmp`;
  let problem: string | undefined;
  if (nodeHeaders === undefined) problem = 'no node headers (node_api.h, openssl/sha.h) in /usr/include/node or beside node';
  else {
    mkdirSync(dirname(addon), { recursive: true });
    try {
      // -z now: OpenSSL symbols the running node does not export fail the load (caught: the JavaScript path) instead of
      // killing the process at the first call; the stack protector and fortified libc calls as a second net.
      execFileSync('cc', ['-O2', '-Wall', '-Wextra', '-fstack-protector-strong', '-D_FORTIFY_SOURCE=2', '-shared', '-fPIC', '-Wl,-z,now', '-I', nodeHeaders, '-o', beingBuilt, `native/${name}.c`], { stdio: ['ignore', 'ignore', 'pipe'] });
      renameSync(beingBuilt, addon);
      builtAddons.push(addon);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      problem = code === 'ENOENT' ? 'no C compiler (cc)' : `cc failed: ${String((error as { stderr?: Buffer }).stderr ?? '').trim().split('\n')[0] ?? ''}`;
      rmSync(beingBuilt, { force: true });
    }
  }
  if (problem !== undefined) {
    rmSync(addon, { force: true });
    console.log(`${addon}: not built (${problem}); ${fallback}`);
  }
}

for (const file of [join(out, 'server.mjs'), join(out, 'cli.mjs'), join(consoleDir, 'console.js'), join(lambdaDir, 'handler.mjs'), join(lambdaDir, 'erasureStep.mjs'), zipFile, ...builtAddons]) {
  console.log(`${file.padEnd(30)} ${(statSync(file).size / 1024).toFixed(0).padStart(6)} KiB`);
}
