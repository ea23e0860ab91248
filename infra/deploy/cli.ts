/**
 * `npm run infra -- deploy|outputs|destroy --stack NAME`: the platform on AWS in two stacks.
 *
 *   NAME-artifacts  infra/cloudformation/bootstrap.yaml: the artifacts bucket
 *   NAME            infra/cloudformation/platform.yaml: everything else
 *
 * Why two: the functions' code must be in S3 before CloudFormation creates them, so the bucket cannot be
 * created by the stack that needs the code in it. `deploy` deploys the artifacts stack, uploads dist/lambda.zip
 * (built when missing) under its SHA-256 and the Spark artifacts of dist/spark (npm run package, run when
 * missing) under spark/<sha256>/ with their manifest, then deploys the platform stack with ArtifactsBucket,
 * LambdaCodeKey, ErasureJobKey and ErasurePyFilesKey (the uploaded erasure entry script and spark-udfs zip,
 * unless given) set. `destroy` deletes the platform stack, empties and deletes the artifacts stack.
 *
 * Exit codes: 0 done, 1 an AWS operation failed (the message names the resource and the reason), 2 usage.
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { parse as parseYaml } from 'yaml';
import { S3Client } from '@aws-sdk/client-s3';
import { emptyArtifactsBucket, lambdaZip, uploadLambdaZip } from './artifacts.ts';
import { SPARK_PREFIX, artifactKey } from '../artifacts/manifest.ts';
import { sparkArtifacts, uploadSparkArtifacts } from '../artifacts/upload.ts';
import { DEFAULT_TIMEOUT_MINUTES, StackOperationError, StackOperations, type Output } from './stack.ts';

export const STACK_COMMANDS = new Set(['deploy', 'outputs', 'destroy']);

export const STACK_USAGE = `usage:
  infra deploy  --stack NAME [--parameters KEY=VALUE ...] [--timeout MINUTES] [--endpoint URL]
  infra outputs --stack NAME [--endpoint URL]
  infra destroy --stack NAME [--yes] [--timeout MINUTES] [--endpoint URL]

deploy   deploys NAME-artifacts (the artifacts bucket), uploads dist/lambda.zip (building it when missing)
         and the Spark artifacts of dist/spark with their manifest (npm run package when missing), then deploys NAME (infra/cloudformation/platform.yaml) through a change set, showing its events.
         Parameters are the template's (KeyAdministratorArn is required; EnvironmentName defaults to NAME);
         on an update, parameters not given keep their values.
outputs  prints the stacks' outputs (API URL, key ids, bucket and table names).
destroy  deletes NAME, then empties and deletes NAME-artifacts; asks for the stack name unless --yes.
         A warehouse bucket that still holds data is not emptied: its deletion fails, named.

--timeout MINUTES  how long each stack operation may take (default ${DEFAULT_TIMEOUT_MINUTES}); past it the command exits 1
         naming the stack, its status and the last event (CloudFormation goes on: deploy again once it settled).
--endpoint URL (or PSEUDO_AWS_ENDPOINT) points every client at a local endpoint such as moto;
AWS_REGION picks the region (default eu-west-1). Exit codes: 0 done, 1 failed, 2 usage.
`;

const TEMPLATES = {
  bootstrap: fileURLToPath(new URL('../cloudformation/bootstrap.yaml', import.meta.url)),
  platform: fileURLToPath(new URL('../cloudformation/platform.yaml', import.meta.url)),
};
const ENVIRONMENT_NAME = /^[a-z][a-z0-9]{1,15}$/;

class StackUsageError extends Error {}

interface Streams {
  readonly stdout: Output;
  readonly stderr: Output;
}

/** Runs one stack command; returns the exit code (never throws). */
export async function runStackCommand(argv: readonly string[], streams: Streams = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  try {
    return await run(argv, streams);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (error instanceof StackUsageError) {
      streams.stderr.write(`${message}\n${STACK_USAGE}`);
      return 2;
    }
    // AWS SDK errors: their class name and message (CloudFormation's messages name resources, not data).
    const prefix = error instanceof StackOperationError ? '' : `${error instanceof Error ? error.name : 'error'}: `;
    streams.stderr.write(`${prefix}${message}\n`);
    return 1;
  }
}

async function run(argv: readonly string[], { stdout }: Streams): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        stack: { type: 'string' },
        parameters: { type: 'string', multiple: true },
        endpoint: { type: 'string' },
        yes: { type: 'boolean' },
        timeout: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    throw new StackUsageError(error instanceof Error ? error.message : String(error));
  }
  const { values, positionals } = parsed;
  if (values.help) {
    stdout.write(STACK_USAGE);
    return 0;
  }
  const [command, ...rest] = positionals;
  if (!command || !STACK_COMMANDS.has(command)) throw new StackUsageError(`unknown command: ${command ?? '(none)'}`);
  const stackName = values.stack;
  if (!stackName) throw new StackUsageError(`${command} needs --stack NAME`);
  if (!/^[A-Za-z][A-Za-z0-9-]{0,100}$/.test(stackName)) throw new StackUsageError('--stack: letters, digits and hyphens, starting with a letter');
  // `--parameters A=1 B=2`: the first value is the option's, the others arrive as positionals.
  const parameters = parseParameters([...(values.parameters ?? []), ...rest]);
  if (command !== 'deploy' && Object.keys(parameters).length > 0) throw new StackUsageError(`${command} takes no parameters`);
  const timeoutMinutes = values.timeout === undefined ? DEFAULT_TIMEOUT_MINUTES : Number(values.timeout);
  if (!(Number.isFinite(timeoutMinutes) && timeoutMinutes > 0)) throw new StackUsageError('--timeout: minutes, a number above 0');

  const endpoint = values.endpoint ?? process.env.PSEUDO_AWS_ENDPOINT;
  const region = process.env.AWS_REGION ?? 'eu-west-1';
  const local = endpoint ? { endpoint } : {};
  const cloudFormation = new CloudFormationClient({ region, ...local });
  const s3 = new S3Client({ region, ...local, forcePathStyle: endpoint !== undefined });
  // A local endpoint settles at once; AWS takes minutes, and DescribeStackEvents has a rate limit.
  const stacks = new StackOperations(cloudFormation, stdout, endpoint ? 200 : 5000, timeoutMinutes * 60_000);
  const artifactsStack = `${stackName}-artifacts`;

  switch (command) {
    case 'deploy': {
      const environmentName = parameters.EnvironmentName ?? stackName;
      if (!ENVIRONMENT_NAME.test(environmentName)) {
        throw new StackUsageError('EnvironmentName (default: the stack name) must be 2-16 lowercase letters and digits, starting with a letter: pass --parameters EnvironmentName=…');
      }
      for (const reserved of ['ArtifactsBucket', 'LambdaCodeKey']) if (reserved in parameters) throw new StackUsageError(`${reserved} is set by deploy`);
      const platformTemplate = readFileSync(TEMPLATES.platform, 'utf8');
      // An update keeps the parameters the stack already has (UsePreviousValue): only those it lacks must be given.
      const existing = await stacks.describe(stackName);
      checkParameters(platformTemplate, parameters, new Set((existing?.Parameters ?? []).map((parameter) => parameter.ParameterKey ?? '')));
      const bootstrap = await stacks.deploy({ stackName: artifactsStack, templateBody: readFileSync(TEMPLATES.bootstrap, 'utf8'), parameters: { EnvironmentName: environmentName } });
      const bucket = bootstrap.outputs.ArtifactsBucketName;
      if (!bucket) throw new StackOperationError(`stack ${artifactsStack} has no ArtifactsBucketName output`);
      const codeKey = await uploadLambdaZip(s3, bucket, lambdaZip(stdout), stdout);
      const spark = sparkArtifacts(stdout);
      await uploadSparkArtifacts(s3, bucket, spark, stdout);
      // The erasure runner's job: the uploaded entry script, and the spark-udfs zip for its --py-files (the
      // cluster then needs only the package's dependencies: infra/emr/bootstrap/python-dependencies.sh).
      const uploadedKey = (name: string | undefined): string | undefined => {
        const file = spark.manifest.files.find((candidate) => candidate.name === name);
        return file ? artifactKey(SPARK_PREFIX, file) : undefined;
      };
      const erasureJobKey = parameters.ErasureJobKey ?? uploadedKey(spark.manifest.jobs.erasure.entry);
      const erasurePyFiles = spark.manifest.jobs.erasure.pyFiles;
      if (erasurePyFiles.length > 1) throw new StackOperationError(`the erasure job needs ${erasurePyFiles.length} zips on --py-files; the template passes one (ErasurePyFilesKey)`);
      const erasurePyFilesKey = parameters.ErasurePyFilesKey ?? uploadedKey(erasurePyFiles[0]);
      const platform = await stacks.deploy({
        stackName,
        templateBody: platformTemplate,
        parameters: { ...parameters, EnvironmentName: environmentName, ArtifactsBucket: bucket, LambdaCodeKey: codeKey, ...(erasureJobKey ? { ErasureJobKey: erasureJobKey } : {}), ...(erasurePyFilesKey !== undefined ? { ErasurePyFilesKey: erasurePyFilesKey } : {}) },
      });
      stdout.write(`${stackName}: ${platform.status}\n`);
      printOutputs(stdout, platform.outputs);
      return 0;
    }
    case 'outputs':
      printOutputs(stdout, { ...(await stacks.outputs(artifactsStack)), ...(await stacks.outputs(stackName)) });
      return 0;
    case 'destroy': {
      if (!values.yes) await confirm(stackName);
      if (await stacks.destroy(stackName)) stdout.write(`${stackName}: deleted\n`);
      else stdout.write(`${stackName}: no such stack\n`);
      const artifacts = await stacks.describe(artifactsStack);
      if (artifacts) {
        const bucket = (artifacts.Outputs ?? []).find((output) => output.OutputKey === 'ArtifactsBucketName')?.OutputValue;
        if (bucket) stdout.write(`s3://${bucket}: ${await emptyArtifactsBucket(s3, bucket)} object versions deleted\n`);
        await stacks.destroy(artifactsStack);
        stdout.write(`${artifactsStack}: deleted\n`);
      }
      return 0;
    }
    default:
      throw new StackUsageError(`unknown command: ${command}`);
  }
}

/** Parameters deploy sets itself (the artifacts it uploaded) or derives (EnvironmentName from the stack name). */
const SET_BY_DEPLOY = new Set(['EnvironmentName', 'ArtifactsBucket', 'LambdaCodeKey', 'ErasureJobKey', 'ErasurePyFilesKey']);

/**
 * Before anything is created or uploaded: every parameter of the platform template without a default is given or
 * kept from the existing stack (`kept`: an update reuses those), and every given one is the template's. CloudFormation would say so only after the artifacts
 * stack and the uploads ("Missing parameter", "do not exist in the template"). The template's Parameters section
 * is plain YAML (the intrinsic-function tags elsewhere are left unresolved; moto's ValidateTemplate lists no
 * parameters, AWS's would).
 */
function checkParameters(templateBody: string, parameters: Readonly<Record<string, string>>, kept: ReadonlySet<string>): void {
  const template = parseYaml(templateBody, { logLevel: 'silent' }) as { Parameters?: Record<string, { Default?: unknown }> };
  const declared = Object.entries(template.Parameters ?? {});
  const names = new Set(declared.map(([name]) => name));
  const unknown = Object.keys(parameters).filter((name) => !names.has(name));
  if (unknown.length > 0) throw new StackUsageError(`the platform template has no parameter ${unknown.join(', ')}`);
  const missing = declared.filter(([name, spec]) => spec.Default === undefined && !SET_BY_DEPLOY.has(name) && !(name in parameters) && !kept.has(name)).map(([name]) => name);
  if (missing.length > 0) throw new StackUsageError(`deploy needs --parameters ${missing.map((name) => `${name}=…`).join(' ')}`);
}

function parseParameters(pairs: readonly string[]): Record<string, string> {
  const parameters: Record<string, string> = {};
  for (const pair of pairs) {
    const match = /^([A-Za-z0-9]+)=(.*)$/s.exec(pair);
    if (!match) throw new StackUsageError('parameters are KEY=VALUE (the key: letters and digits)');
    parameters[match[1]!] = match[2]!;
  }
  return parameters;
}

async function confirm(stackName: string): Promise<void> {
  if (!process.stdin.isTTY) throw new StackUsageError('destroy asks for confirmation on a terminal; elsewhere pass --yes');
  const prompt = createInterface({ input: process.stdin, output: process.stdout });
  try {
    const answer = await prompt.question(`This deletes stacks ${stackName} and ${stackName}-artifacts (the erasure ledger with them, unless protected). Type the stack name to go on: `);
    if (answer.trim() !== stackName) throw new StackUsageError('not confirmed: nothing was deleted');
  } finally {
    prompt.close();
  }
}

function printOutputs(stdout: Output, outputs: Readonly<Record<string, string>>): void {
  const keys = Object.keys(outputs).sort();
  const width = Math.max(0, ...keys.map((key) => key.length));
  stdout.write('outputs:\n');
  for (const key of keys) stdout.write(`  ${key.padEnd(width)}  ${outputs[key]}\n`);
}
