/**
 * `npm run package [-- --out DIR]`: the Spark artifacts for EMR, into dist/spark/ (or DIR):
 *
 *   <module>-<version>-py3-none-any.whl   each package's wheel (pip install on the cluster, a bootstrap action)
 *   <module>-<version>.zip                the same archive named .zip, for --py-files: Spark puts .zip files of
 *                                         --py-files on the executors' sys.path, not .whl files
 *   batch.py, stream.py, erasure.py,      the entry scripts spark-submit runs as files (spark-udfs/entry/,
 *   maintain.py, rekey.py                 stream-consumer/entry/): absolute imports, no parent package needed
 *   manifest.json                         versions, file names, SHA-256 and bytes, each job's spark-submit arguments
 *
 * Wheels are built offline (pip wheel --no-deps --no-index --no-build-isolation with the venv's setuptools)
 * from a copy of each package without tests or build leftovers, with SOURCE_DATE_EPOCH fixed so that the
 * same sources give the same bytes and deploy uploads nothing new for an unchanged build.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { JOB_NAMES, JOBS, MANIFEST_FILE, PACKAGES, SPARK_DIST, jobSparkSubmit, type JobName, type ManifestFile, type PackageName, type SparkManifest } from '../infra/artifacts/manifest.ts';

const USAGE = `usage: npm run package [-- --out DIR]

Builds the spark-udfs and stream-consumer wheels (offline, with the venv's pip), zips for --py-files,
the job entry scripts and manifest.json into dist/spark/ (or DIR). Needs the venv (npm run setup).
Exit status: 0 built, 1 a build failed, 2 usage.

examples:
  npm run package
  npm run package -- --out /tmp/spark-artifacts`;

/** Left out of the copy a wheel is built from: tests and what earlier builds left in the package folder. */
const LEFT_OUT = new Set(['__pycache__', 'build', 'tests', 'entry', 'dist']);
/** 1980-01-01, the earliest time a zip can hold: wheel timestamps that never change. */
const SOURCE_DATE_EPOCH = '315532800';

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function buildWheel(pkg: PackageName, work: string, python: string, log: (line: string) => void): string {
  const source = join(work, pkg);
  cpSync(resolve(pkg), source, { recursive: true, filter: (path) => !LEFT_OUT.has(basename(path)) && !path.endsWith('.egg-info') });
  const wheels = join(work, `${pkg}-wheel`);
  log(`${pkg}: building the wheel (pip wheel, offline)`);
  const build = spawnSync(python, ['-m', 'pip', 'wheel', '--no-deps', '--no-index', '--disable-pip-version-check', '--no-build-isolation', '--wheel-dir', wheels, source], {
    encoding: 'utf8',
    env: { ...process.env, SOURCE_DATE_EPOCH },
  });
  if (build.status !== 0) throw new Error(`${pkg}: pip wheel failed:\n${(build.stderr || build.stdout).slice(-3000)}`);
  const wheel = readdirSync(wheels).find((name) => name.startsWith(`${PACKAGES[pkg].module}-`) && name.endsWith('.whl'));
  if (!wheel) throw new Error(`${pkg}: pip wheel wrote no wheel`);
  return join(wheels, wheel);
}

export function packageSpark(out: string, log: (line: string) => void): SparkManifest {
  const python = resolve('.venv/bin/python');
  if (!existsSync(python)) throw new Error('the venv is missing: run `npm run setup` first');
  const work = mkdtempSync(join(tmpdir(), 'spark-package-'));
  try {
    // Only an earlier build (or nothing) is replaced: `--out .` must not empty a checkout.
    if (existsSync(out) && readdirSync(out).length > 0 && !existsSync(join(out, MANIFEST_FILE))) {
      throw new Error(`${out} holds files but no ${MANIFEST_FILE} of an earlier build: choose an empty or new folder`);
    }
    rmSync(out, { recursive: true, force: true });
    mkdirSync(out, { recursive: true });
    const files: ManifestFile[] = [];
    const packages: Record<string, { version: string }> = {};
    const zips = new Map<PackageName, string>();
    const entries = new Map<JobName, string>();
    const add = (name: string, kind: ManifestFile['kind'], pkg: PackageName, from: string): void => {
      copyFileSync(from, join(out, name));
      const bytes = readFileSync(join(out, name));
      files.push({ name, kind, package: pkg, sha256: sha256(bytes), bytes: bytes.length });
      log(`${pkg}: ${name} (${bytes.length} bytes)`);
    };
    for (const pkg of Object.keys(PACKAGES) as PackageName[]) {
      const wheel = buildWheel(pkg, work, python, log);
      const match = /^([A-Za-z0-9_]+)-([^-]+)-/.exec(basename(wheel));
      if (!match) throw new Error(`${pkg}: cannot read the version from ${basename(wheel)}`);
      const version = match[2]!;
      packages[pkg] = { version };
      add(basename(wheel), 'wheel', pkg, wheel);
      const zip = `${match[1]!}-${version}.zip`;
      add(zip, 'zip', pkg, wheel);
      zips.set(pkg, zip);
      for (const [job, script] of Object.entries(PACKAGES[pkg].entries) as [JobName, string][]) {
        const name = `${job}.py`;
        add(name, 'entry', pkg, resolve(pkg, script));
        entries.set(job, name);
      }
    }
    const jobs = Object.fromEntries(
      JOB_NAMES.map((job) => [job, { entry: entries.get(job)!, pyFiles: JOBS[job].packages.map((pkg) => zips.get(pkg)!), args: [...JOBS[job].args], sparkSubmit: [] as string[] }]),
    ) as SparkManifest['jobs'];
    const manifest: SparkManifest = { format: 1, packages, files, jobs };
    // Recorded with placeholders: {artifacts} is s3://<bucket>/spark, the others the job's own arguments.
    const placeholders = Object.fromEntries(['config', 'order', 'certificate', 'progress', 'registry', 'report', 'api'].map((name) => [name, `{${name}}`]));
    for (const job of JOB_NAMES) manifest.jobs[job].sparkSubmit = jobSparkSubmit(manifest, job, '{artifacts}', placeholders);
    writeFileSync(join(out, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
    log(`${join(out, MANIFEST_FILE)}: ${files.length} files, jobs ${JOB_NAMES.join(', ')}`);
    return manifest;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function main(argv: readonly string[]): number {
  let values;
  try {
    ({ values } = parseArgs({ args: [...argv], options: { out: { type: 'string' }, help: { type: 'boolean', short: 'h' } } }));
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  try {
    packageSpark(resolve(values.out ?? SPARK_DIST), (line) => process.stdout.write(`${line}\n`));
    return 0;
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) process.exitCode = main(process.argv.slice(2));
