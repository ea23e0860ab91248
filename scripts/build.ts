/**
 * `npm run build`: bundles the server, the admin CLI and the Lambda handler with esbuild into dist/,
 * and zips the Lambda bundle for upload (Debian's zip). Prints each bundle's size.
 */
import { execFileSync } from 'node:child_process';
import { rmSync, statSync } from 'node:fs';
import { build } from 'esbuild';

// Bundled ESM still meets CommonJS packages (express) that call require().
const banner = { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" };
// node-sqlite3-wasm loads its .wasm from its own folder: it stays in node_modules (see api/erasure/_sqlite.ts).
const common = { bundle: true, platform: 'node', format: 'esm', target: 'node20', sourcemap: true, legalComments: 'none', banner } as const;
const external = ['node-sqlite3-wasm'];

await build({ ...common, external, entryPoints: { server: 'api/main.ts', cli: 'api/cli.ts' }, outdir: 'dist', outExtension: { '.js': '.mjs' } });
await build({ ...common, external, entryPoints: { handler: 'lambda/handler.ts' }, outdir: 'dist/lambda', outExtension: { '.js': '.mjs' }, minify: true, sourcemap: false });

rmSync('dist/lambda.zip', { force: true });
execFileSync('zip', ['-q', '-j', 'dist/lambda.zip', 'dist/lambda/handler.mjs']);

for (const file of ['dist/server.mjs', 'dist/cli.mjs', 'dist/lambda/handler.mjs', 'dist/lambda.zip']) {
  console.log(`${file.padEnd(26)} ${(statSync(file).size / 1024).toFixed(0).padStart(6)} KiB`);
}
