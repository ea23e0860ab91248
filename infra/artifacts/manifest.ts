/**
 * dist/spark/manifest.json: what `npm run package` built for EMR and how each job is submitted.
 *
 * Every file is uploaded by `deploy` under `<prefix>/<sha256>/<name>` (prefix `spark` in the artifacts bucket):
 * the key follows from the manifest alone, a rebuilt file is a new key, an unchanged one is not uploaded again,
 * and the manifest itself goes to `<prefix>/manifest.json` (the current build) and `<prefix>/manifests/<sha256>.json`.
 */
import { z } from 'zod';
import { ICEBERG_CONF, sparkSubmitArgs } from './sparkSubmit.ts';

export const SPARK_DIST = 'dist/spark';
export const MANIFEST_FILE = 'manifest.json';
export const SPARK_PREFIX = 'spark';

export const JOB_NAMES = ['batch', 'stream', 'erasure', 'maintain', 'rekey'] as const;
export type JobName = (typeof JOB_NAMES)[number];

/** The packages, their import names, and which jobs' entry scripts live in them. */
export const PACKAGES = {
  'spark-udfs': {
    module: 'spark_udfs',
    entries: { batch: 'entry/batch.py', erasure: 'entry/erasure.py', maintain: 'entry/maintain.py', rekey: 'entry/rekey.py' },
  },
  'stream-consumer': { module: 'stream_consumer', entries: { stream: 'entry/stream.py' } },
} as const;
export type PackageName = keyof typeof PACKAGES;

/** Per job: the packages it imports (zips on --py-files) and the arguments it needs, as placeholders. */
export const JOBS: Readonly<Record<JobName, { readonly packages: readonly PackageName[]; readonly args: readonly string[] }>> = {
  batch: { packages: ['spark-udfs'], args: ['--config', '{config}'] },
  stream: { packages: ['spark-udfs', 'stream-consumer'], args: ['--config', '{config}'] },
  erasure: { packages: ['spark-udfs'], args: ['--order', '{order}', '--certificate', '{certificate}', '--progress', '{progress}'] },
  maintain: { packages: ['spark-udfs'], args: ['--registry', '{registry}', '--report', '{report}'] },
  rekey: { packages: ['spark-udfs'], args: ['--registry', '{registry}', '--api', '{api}', '--report', '{report}'] },
};

/** The s3:// arguments `infra submit` takes for a job (its placeholders); `progress` may be left out. */
export function jobOptions(job: JobName): { readonly required: readonly string[]; readonly allowed: readonly string[] } {
  const allowed = JOBS[job].args.flatMap((arg) => /^\{(\w+)\}$/.exec(arg)?.slice(1) ?? []);
  return { required: allowed.filter((name) => name !== 'progress'), allowed };
}

const sha256 = z.string().regex(/^[0-9a-f]{64}$/);
const fileName = z.string().regex(/^[A-Za-z0-9_.+-]+$/);

const manifestSchema = z.strictObject({
  format: z.literal(1),
  packages: z.record(z.string(), z.strictObject({ version: z.string().min(1) })),
  files: z.array(z.strictObject({ name: fileName, kind: z.enum(['wheel', 'zip', 'entry']), package: z.string(), sha256, bytes: z.number().int().nonnegative() })),
  // z.record over an enum needs every job: a manifest without one is refused.
  jobs: z.record(z.enum(JOB_NAMES), z.strictObject({ entry: fileName, pyFiles: z.array(fileName), args: z.array(z.string()), sparkSubmit: z.array(z.string()) })),
});

export type SparkManifest = z.infer<typeof manifestSchema>;
export type ManifestFile = SparkManifest['files'][number];

/** A manifest read back (from dist/ or S3); a malformed one is refused with the first problem's path. */
export function parseManifest(text: string, source: string): SparkManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error(`${source}: not JSON`);
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`${source}: not a Spark artifacts manifest (${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid'})`);
  }
  return parsed.data;
}

/** The key of one file under a prefix: `<prefix>/<sha256>/<name>`. */
export function artifactKey(prefix: string, file: Pick<ManifestFile, 'name' | 'sha256'>): string {
  return `${prefix}/${file.sha256}/${file.name}`;
}

/** The step's spark-submit arguments for a job of this manifest, its files at `base` (s3://bucket/prefix). */
export function jobSparkSubmit(manifest: SparkManifest, job: JobName, base: string, values: Readonly<Record<string, string>>): string[] {
  const spec = manifest.jobs[job];
  const location = (name: string): string => {
    const file = manifest.files.find((candidate) => candidate.name === name);
    if (!file) throw new Error(`the manifest names ${name} for ${job} but lists no such file`);
    return `${base}/${file.sha256}/${file.name}`;
  };
  const jobArgs = spec.args.map((arg) =>
    arg.replace(/^\{(\w+)\}$/, (_placeholder, name: string) => {
      const value = values[name];
      if (value === undefined) throw new Error(`${job} needs --${name}`);
      return value;
    }),
  );
  return sparkSubmitArgs({ entryScript: location(spec.entry), pyFiles: spec.pyFiles.map(location), jobArgs, conf: ICEBERG_CONF });
}
