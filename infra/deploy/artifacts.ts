/**
 * The Lambda zip on its way to the artifacts bucket. The key is the zip's SHA-256 (`lambda/<hex>.zip`): a new
 * build is a new key, so the platform stack's LambdaCodeKey parameter changes and CloudFormation updates both
 * functions; the same build deployed again uploads nothing and changes nothing.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { DeleteObjectsCommand, HeadObjectCommand, ListObjectVersionsCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { StackOperationError, type Output } from './stack.ts';

export const LAMBDA_ZIP = 'dist/lambda.zip';

/** dist/lambda.zip, built with `npm run build` first when it is missing. */
export function lambdaZip(output: Output, path = LAMBDA_ZIP): Buffer {
  if (!existsSync(path)) {
    output.write(`${path} is missing: building it (npm run build)\n`);
    const build = spawnSync('npx', ['tsx', 'scripts/build.ts'], { stdio: ['ignore', 'ignore', 'inherit'] });
    if (build.status !== 0 || !existsSync(path)) throw new StackOperationError(`npm run build did not produce ${path}`);
  }
  return readFileSync(path);
}

export function codeKey(zip: Buffer): string {
  return `lambda/${createHash('sha256').update(zip).digest('hex')}.zip`;
}

/** Uploads the zip unless that exact build is already there; returns its key. */
export async function uploadLambdaZip(s3: S3Client, bucket: string, zip: Buffer, output: Output): Promise<string> {
  const key = codeKey(zip);
  try {
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    output.write(`s3://${bucket}/${key}: already uploaded\n`);
    return key;
  } catch (error) {
    if (!(error instanceof Error && (error.name === 'NotFound' || error.name === 'NoSuchKey'))) throw error;
  }
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: zip, ContentType: 'application/zip' }));
  output.write(`s3://${bucket}/${key}: uploaded (${zip.length} bytes)\n`);
  return key;
}

/**
 * Deletes every object version and delete marker of the artifacts bucket, so that its stack can be deleted.
 * Only the artifacts bucket: it holds code and logs. The warehouse bucket is never emptied by a tool; its
 * stack's deletion fails on it, named, while it holds data.
 */
export async function emptyArtifactsBucket(s3: S3Client, bucket: string): Promise<number> {
  let deleted = 0;
  for (;;) {
    const listing = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, MaxKeys: 1000 }));
    const objects = [...(listing.Versions ?? []), ...(listing.DeleteMarkers ?? [])].flatMap((version) => (version.Key ? [{ Key: version.Key, VersionId: version.VersionId }] : []));
    if (objects.length === 0) return deleted;
    await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects, Quiet: true } }));
    deleted += objects.length;
  }
}
