/**
 * The Spark artifacts on their way to the artifacts bucket (`deploy`), and read back (`submit`).
 *
 * Each file of dist/spark/manifest.json goes to `spark/<sha256>/<name>` unless that key is already there (a
 * rebuilt file is a new key; an unchanged build uploads nothing); then the manifest to
 * `spark/manifests/<sha256>.json` and `spark/manifest.json`, which `submit` reads: the current build. A file
 * whose bytes no longer match the manifest (edited after `npm run package`) is refused before anything is uploaded.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { MANIFEST_FILE, SPARK_DIST, SPARK_PREFIX, artifactKey, parseManifest, type SparkManifest } from './manifest.ts';

export interface Output {
  write(text: string): unknown;
}

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/** dist/spark, built with `npm run package` first when its manifest is missing. */
export function sparkArtifacts(output: Output, folder = SPARK_DIST): { manifest: SparkManifest; text: string; folder: string } {
  const path = join(folder, MANIFEST_FILE);
  if (!existsSync(path)) {
    output.write(`${path} is missing: building the Spark artifacts (npm run package)\n`);
    const build = spawnSync('npx', ['tsx', 'scripts/package.ts', '--out', folder], { stdio: ['ignore', 'ignore', 'inherit'] });
    if (build.status !== 0 || !existsSync(path)) throw new Error(`npm run package did not produce ${path}`);
  }
  const text = readFileSync(path, 'utf8');
  try {
    return { manifest: parseManifest(text, path), text, folder };
  } catch (error) {
    // A dist/spark from an older checkout (a job added since): the build, not the user, is out of date.
    throw new Error(`${error instanceof Error ? error.message : String(error)}; it may come from an older build: run npm run package`, { cause: error });
  }
}

async function exists(s3: S3Client, bucket: string, key: string): Promise<boolean> {
  try {
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return true;
  } catch (error) {
    if (error instanceof Error && (error.name === 'NotFound' || error.name === 'NoSuchKey')) return false;
    throw error;
  }
}

/** Uploads the files and the manifest; returns the manifest's key. */
export async function uploadSparkArtifacts(s3: S3Client, bucket: string, artifacts: { manifest: SparkManifest; text: string; folder: string }, output: Output, prefix = SPARK_PREFIX): Promise<string> {
  const files = artifacts.manifest.files.map((file) => {
    const bytes = readFileSync(join(artifacts.folder, file.name));
    if (sha256(bytes) !== file.sha256) throw new Error(`${join(artifacts.folder, file.name)} does not match its manifest (changed after npm run package): run npm run package again`);
    return { file, bytes };
  });
  for (const { file, bytes } of files) {
    const key = artifactKey(prefix, file);
    if (await exists(s3, bucket, key)) {
      output.write(`s3://${bucket}/${key}: already uploaded\n`);
      continue;
    }
    const contentType = file.kind === 'entry' ? 'text/x-python' : 'application/zip';
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: bytes, ContentType: contentType, ChecksumSHA256: Buffer.from(file.sha256, 'hex').toString('base64') }));
    output.write(`s3://${bucket}/${key}: uploaded (${bytes.length} bytes)\n`);
  }
  const body = Buffer.from(artifacts.text);
  const manifestKey = `${prefix}/manifests/${sha256(body)}.json`;
  for (const key of [manifestKey, `${prefix}/${MANIFEST_FILE}`]) {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: 'application/json' }));
  }
  output.write(`s3://${bucket}/${prefix}/${MANIFEST_FILE}: the current Spark artifacts (${artifacts.manifest.files.length} files)\n`);
  return manifestKey;
}

/** The manifest `submit` reads: `<prefix>/manifest.json`. */
export async function readUploadedManifest(s3: S3Client, bucket: string, prefix: string): Promise<SparkManifest> {
  const key = `${prefix}/${MANIFEST_FILE}`;
  let text: string;
  try {
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    text = (await object.Body?.transformToString()) ?? '';
  } catch (error) {
    if (error instanceof Error && (error.name === 'NoSuchKey' || error.name === 'NotFound')) throw new Error(`s3://${bucket}/${key} does not exist: deploy (or upload) the Spark artifacts first`, { cause: error });
    throw error;
  }
  return parseManifest(text, `s3://${bucket}/${key}`);
}
