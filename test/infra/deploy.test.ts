/**
 * `npm run infra -- deploy|outputs|destroy` against moto's CloudFormation over HTTP: the CLI as a child
 * process, then what it created, read back through the services' own APIs.
 *
 * moto's CloudFormation creates most of the template's types but not these (checked below, so a moto upgrade
 * that adds one shows up): AWS::SecretsManager::Secret, AWS::S3::BucketPolicy, AWS::Glue::Database,
 * AWS::ApiGateway::Stage, AWS::CloudWatch::Alarm. It also drops properties of types it does create: the ledger
 * table's PITR and SSE, the stream's on-demand mode and encryption, the buckets' public access block, the
 * functions' arm64 architecture, the artifacts bucket's versioning, the REST API's binary media types, the
 * schedule's state. Those are tested on the rendered template in template.test.ts; here only what moto keeps.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { CloudFormationClient, CreateChangeSetCommand, DeleteStackCommand, DescribeStackResourcesCommand, ListStacksCommand, type ResourceStatus, type StackEvent } from '@aws-sdk/client-cloudformation';
import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetKeyPolicyCommand, GetKeyRotationStatusCommand, KMSClient } from '@aws-sdk/client-kms';
import { GetBucketEncryptionCommand, GetBucketVersioningCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DYNAMO_LEDGER_TABLE } from '../../api/erasure/dynamoLedger.ts';
import { failureMessage, StackOperationError, StackOperations } from '../../infra/deploy/stack.ts';
import { startMoto, TEST_REGION, type Moto } from '../support/moto.ts';

const run = promisify(execFile);
const STACK = 'itest';
const ACCOUNT = '123456789012';
const PARAMETERS = [`KeyAdministratorArn=arn:aws:iam::${ACCOUNT}:root`, 'EmrClusterId=j-ITEST', 'ErasureRegistryFile=config/erasure-registry.json', 'DeletionProtection=false'];
/** Types moto 5.2's CloudFormation does not create (it logs "No Moto CloudFormation support"). */
const MOTO_LACKS = ['AWS::ApiGateway::Stage', 'AWS::CloudWatch::Alarm', 'AWS::Glue::Database', 'AWS::S3::BucketPolicy', 'AWS::SecretsManager::Secret'];

let moto: Moto;
let deployed: { code: number; stdout: string; stderr: string };
let resources: Map<string, { type: string; id: string }>;

async function infra(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run('node_modules/.bin/tsx', ['infra/cli.ts', ...args], { env: { ...process.env, ...moto.env }, maxBuffer: 16 * 1024 * 1024 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: unknown) => {
      const failed = error as { code: number; stdout: string; stderr: string };
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    },
  );
}

/** A call to a moto service this project has no SDK client for; moto routes by the signature's service name. */
async function motoCall(service: string, path: string, init: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<string> {
  const response = await fetch(`${moto.endpoint}${path}`, {
    method: init.method ?? 'GET',
    headers: { authorization: `AWS4-HMAC-SHA256 Credential=testing/20260101/${TEST_REGION}/${service}/aws4_request, SignedHeaders=host, Signature=0`, ...init.headers },
    ...(init.body === undefined ? {} : { body: init.body }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${service} ${path}: ${response.status} ${text.slice(0, 300)}`);
  return text;
}

interface Statement {
  readonly Effect: string;
  readonly Action: string | string[];
  readonly Resource: string | string[];
  readonly Condition?: unknown;
}

async function rolePolicy(roleLogicalId: string, policyLogicalId: string): Promise<Statement[]> {
  const policyName = { ApiFunctionPolicy: 'api-function', ApiRegisteredTablesPolicy: 'api-function-registered-tables', ErasureStepPolicy: 'erasure-step', ErasureStepEmrPolicy: 'erasure-step-emr', EmrJobPolicy: 'emr-jobs', ProducerPolicy: 'producer' }[policyLogicalId]!;
  const body = new URLSearchParams({ Action: 'GetRolePolicy', Version: '2010-05-08', RoleName: resources.get(roleLogicalId)!.id, PolicyName: policyName }).toString();
  const xml = await motoCall('iam', '/', { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  const encoded = /<PolicyDocument>([\s\S]*?)<\/PolicyDocument>/.exec(xml)![1]!;
  const text = decodeURIComponent(encoded.replace(/&quot;/g, '"').replace(/&amp;/g, '&'));
  return (JSON.parse(text) as { Statement: Statement[] }).Statement;
}

const list = (value: string | string[]): string[] => (Array.isArray(value) ? value : [value]);

beforeAll(async () => {
  moto = await startMoto();
  deployed = await infra('deploy', '--stack', STACK, '--endpoint', moto.endpoint, '--parameters', ...PARAMETERS);
  const cloudFormation = new CloudFormationClient({ region: TEST_REGION, endpoint: moto.endpoint });
  const { StackResources } = await cloudFormation.send(new DescribeStackResourcesCommand({ StackName: STACK }));
  resources = new Map((StackResources ?? []).filter((resource) => resource.ResourceType).map((resource) => [resource.LogicalResourceId!, { type: resource.ResourceType!, id: resource.PhysicalResourceId! }]));
}, 240_000);
afterAll(async () => {
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- undefined when beforeAll failed
  await moto?.stop();
});

describe('npm run infra -- deploy, against moto', () => {
  it('deploys the artifacts stack, uploads the zip, deploys the platform through a change set and prints the outputs', () => {
    expect(deployed.stderr).not.toMatch(/Error/);
    expect(deployed.code).toBe(0);
    expect(deployed.stdout).toContain(`${STACK}-artifacts: creating, 2 changes`);
    expect(deployed.stdout).toMatch(/\+ Add {5}LedgerTable \(AWS::DynamoDB::Table\)/);
    expect(deployed.stdout).toMatch(/CREATE_COMPLETE +ApiFunction \(AWS::Lambda::Function\)/);
    expect(deployed.stdout).toContain(`${STACK}: CREATE_COMPLETE`);
    for (const output of ['ApiUrl', 'KeyringKeyId', 'DataKeyId', 'LedgerTableName', 'WarehouseBucketName', 'ArtifactsBucketName', 'ProducerRoleArn']) expect(deployed.stdout).toMatch(new RegExp(`^ {2}${output} +\\S`, 'm'));
    expect(deployed.stdout).toMatch(/ApiUrl +https:\/\/\w+\.execute-api\.eu-west-1\.amazonaws\.com\/api/);
  });

  it('creates every resource moto supports; the rest are the types moto lacks', () => {
    const template = readFileSync('infra/cloudformation/platform.yaml', 'utf8');
    const declared = [...template.matchAll(/^ {2}(\w+):\n {4}Type: (AWS::[\w:]+)/gm)].map((match) => ({ logicalId: match[1]!, type: match[2]! }));
    const missing = declared.filter(({ logicalId }) => !resources.has(logicalId));
    expect([...new Set(missing.map(({ type }) => type))].sort()).toEqual(MOTO_LACKS);
    expect(declared.length - missing.length).toBe(resources.size);
  });

  it('uploaded the zip under its SHA-256 and pointed both functions at it', async () => {
    const key = `lambda/${createHash('sha256').update(readFileSync('dist/lambda.zip')).digest('hex')}.zip`;
    const bucket = /^ {2}ArtifactsBucketName +(\S+)$/m.exec(deployed.stdout)![1]!;
    const s3 = new S3Client({ region: TEST_REGION, endpoint: moto.endpoint, forcePathStyle: true });
    expect((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).ContentLength).toBe(readFileSync('dist/lambda.zip').length);
    for (const name of [`${STACK}-pseudonymization-api`, `${STACK}-pseudonymization-erasure-step`]) {
      const configuration = JSON.parse(await motoCall('lambda', `/2015-03-31/functions/${name}`)) as { Configuration: Record<string, unknown>; Code: { Location?: string } };
      expect(configuration.Configuration.Runtime).toBe('nodejs22.x');
    }
  });

  it('the erasure step function submits the uploaded erasure.py with the uploaded spark-udfs zip on --py-files', async () => {
    const manifest = JSON.parse(readFileSync('dist/spark/manifest.json', 'utf8')) as { files: { name: string; sha256: string }[] };
    const key = (name: string) => `spark/${manifest.files.find((file) => file.name === name)!.sha256}/${name}`;
    const bucket = /^ {2}ArtifactsBucketName +(\S+)$/m.exec(deployed.stdout)![1]!;
    const { Configuration } = JSON.parse(await motoCall('lambda', `/2015-03-31/functions/${STACK}-pseudonymization-erasure-step`)) as { Configuration: { Environment: { Variables: Record<string, string> } } };
    expect(Configuration.Environment.Variables).toMatchObject({ PSEUDO_ERASURE_EMR_JOB_URI: `s3://${bucket}/${key('erasure.py')}`, PSEUDO_ERASURE_EMR_PY_FILES: `s3://${bucket}/${key('spark_udfs-0.1.0.zip')}` });
  });

  it('the API function: handler, memory, reserved concurrency and the service configuration keys', async () => {
    const { Configuration } = JSON.parse(await motoCall('lambda', `/2015-03-31/functions/${STACK}-pseudonymization-api`)) as { Configuration: { Handler: string; MemorySize: number; Timeout: number; Environment: { Variables: Record<string, string> } } };
    expect(Configuration).toMatchObject({ Handler: 'handler.restApiHandler', MemorySize: 1024, Timeout: 29 });
    expect(Configuration.Environment.Variables).toMatchObject({ PSEUDO_KEYRING: 'aws', PSEUDO_ERASURE_LEDGER: 'dynamodb', PSEUDO_ERASURE_LEDGER_TABLE: `${STACK}-pseudonymization-erasure-ledger`, PSEUDO_ERASURE_REGISTRY_FILE: 'config/erasure-registry.json' });
    const concurrency = JSON.parse(await motoCall('lambda', `/2019-09-30/functions/${STACK}-pseudonymization-api/concurrency`)) as { ReservedConcurrentExecutions: number };
    expect(concurrency.ReservedConcurrentExecutions).toBe(50);
  });

  it('the ledger table has the ledger key schema and index', async () => {
    const dynamo = new DynamoDBClient({ region: TEST_REGION, endpoint: moto.endpoint });
    const { Table } = await dynamo.send(new DescribeTableCommand({ TableName: `${STACK}-pseudonymization-erasure-ledger` }));
    expect(Table?.KeySchema).toEqual(DYNAMO_LEDGER_TABLE.KeySchema);
    expect(Table?.GlobalSecondaryIndexes?.map((index) => [index.IndexName, index.KeySchema, index.Projection])).toEqual(DYNAMO_LEDGER_TABLE.GlobalSecondaryIndexes?.map((index) => [index.IndexName, index.KeySchema, index.Projection]));
  });

  it('the warehouse bucket is encrypted with the data key and unversioned', async () => {
    const s3 = new S3Client({ region: TEST_REGION, endpoint: moto.endpoint, forcePathStyle: true });
    const bucket = resources.get('WarehouseBucket')!.id;
    const { ServerSideEncryptionConfiguration } = await s3.send(new GetBucketEncryptionCommand({ Bucket: bucket }));
    expect(ServerSideEncryptionConfiguration?.Rules?.[0]?.ApplyServerSideEncryptionByDefault).toEqual({ SSEAlgorithm: 'aws:kms', KMSMasterKeyID: `arn:aws:kms:${TEST_REGION}:${ACCOUNT}:key/${resources.get('DataKey')!.id}` });
    expect((await s3.send(new GetBucketVersioningCommand({ Bucket: bucket }))).Status).toBeUndefined();
  });

  it('the keyring key rotates, and its policy lets the two function roles only Decrypt with the keyring context', async () => {
    const kms = new KMSClient({ region: TEST_REGION, endpoint: moto.endpoint });
    const keyId = resources.get('KeyringKey')!.id;
    expect((await kms.send(new GetKeyRotationStatusCommand({ KeyId: keyId }))).KeyRotationEnabled).toBe(true);
    const { Policy } = await kms.send(new GetKeyPolicyCommand({ KeyId: keyId, PolicyName: 'default' }));
    // moto answers the policy as a JSON object where KMS answers a JSON string.
    const policy: unknown = Policy;
    const document = (typeof policy === 'string' ? JSON.parse(policy) : policy) as { Statement: (Statement & { Principal: { AWS: string | string[] } })[] };
    const statements = document.Statement;
    const decrypting = statements.filter((statement) => list(statement.Action).includes('kms:Decrypt'));
    expect(decrypting).toHaveLength(1);
    expect(decrypting[0]!.Action).toBe('kms:Decrypt');
    expect(list(decrypting[0]!.Principal.AWS).map((role) => role.replace(/^arn:aws:iam::\d+:role\//, '')).sort()).toEqual([resources.get('ApiFunctionRole')!.id, resources.get('ErasureStepRole')!.id].sort());
    expect(decrypting[0]!.Condition).toEqual({ StringEquals: { 'kms:EncryptionContext:purpose': 'pseudonymization-keyring', 'kms:EncryptionContext:keyring': 'default' } });
  });

  it('the deployed role policies: the API Lambda reaches neither EMR, the warehouse nor the stream; the producer only puts records', async () => {
    const api = [...(await rolePolicy('ApiFunctionRole', 'ApiFunctionPolicy')), ...(await rolePolicy('ApiFunctionRole', 'ApiRegisteredTablesPolicy'))];
    const apiActions = api.flatMap((statement) => list(statement.Action));
    expect(apiActions.filter((action) => /^(elasticmapreduce|s3|kinesis):/.test(action))).toEqual([]);
    expect(apiActions.filter((action) => action.startsWith('glue:'))).toEqual(['glue:GetTable']);
    const producer = await rolePolicy('ProducerRole', 'ProducerPolicy');
    expect(producer.flatMap((statement) => list(statement.Action)).sort()).toEqual(['kinesis:PutRecord', 'kinesis:PutRecords', 'kms:GenerateDataKey']);
    expect(producer[0]!.Resource).toBe(`arn:aws:kinesis:${TEST_REGION}:${ACCOUNT}:stream/${STACK}-pseudonymization-records`);
    const step = [...(await rolePolicy('ErasureStepRole', 'ErasureStepPolicy')), ...(await rolePolicy('ErasureStepRole', 'ErasureStepEmrPolicy'))];
    const emr = step.find((statement) => list(statement.Action).includes('elasticmapreduce:AddJobFlowSteps'))!;
    expect(emr.Resource).toBe(`arn:aws:elasticmapreduce:${TEST_REGION}:${ACCOUNT}:cluster/j-ITEST`);
    for (const statements of [api, producer, step, await rolePolicy('EmrJobRole', 'EmrJobPolicy')]) {
      for (const statement of statements) {
        for (const action of list(statement.Action)) expect(action).not.toContain('*');
        for (const resource of list(statement.Resource)) expect(resource).not.toBe('*');
      }
    }
  });

  it('the function log groups keep logs for the retention parameter', async () => {
    const answer = JSON.parse(await motoCall('logs', '/', { method: 'POST', body: JSON.stringify({ logGroupNamePrefix: `/aws/lambda/${STACK}-` }), headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'Logs_20140328.DescribeLogGroups' } })) as { logGroups: { logGroupName: string; retentionInDays: number }[] };
    expect(answer.logGroups.map((group) => [group.logGroupName, group.retentionInDays])).toEqual([
      [`/aws/lambda/${STACK}-pseudonymization-api`, 30],
      [`/aws/lambda/${STACK}-pseudonymization-erasure-step`, 30],
    ]);
  });

  it('deploys without EmrClusterId and ErasureRegistryFile: the conditional Glue and EMR policies are not created, the functions get no registry or cluster', async () => {
    const bare = 'itestbare';
    const result = await infra('deploy', '--stack', bare, '--endpoint', moto.endpoint, '--parameters', `KeyAdministratorArn=arn:aws:iam::${ACCOUNT}:root`, 'DeletionProtection=false');
    expect(result.stderr).not.toMatch(/Error/);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`${bare}: CREATE_COMPLETE`);
    const cloudFormation = new CloudFormationClient({ region: TEST_REGION, endpoint: moto.endpoint });
    const { StackResources } = await cloudFormation.send(new DescribeStackResourcesCommand({ StackName: bare }));
    const created = new Set((StackResources ?? []).map((resource) => resource.LogicalResourceId));
    expect(created.has('ApiFunctionPolicy')).toBe(true);
    expect(created.has('ApiRegisteredTablesPolicy')).toBe(false);
    expect(created.has('ErasureStepEmrPolicy')).toBe(false);
    const { Configuration } = JSON.parse(await motoCall('lambda', `/2015-03-31/functions/${bare}-pseudonymization-erasure-step`)) as { Configuration: { Environment: { Variables: Record<string, string> } } };
    expect(Object.keys(Configuration.Environment.Variables).filter((key) => key === 'PSEUDO_ERASURE_REGISTRY_FILE' || key === 'PSEUDO_ERASURE_EMR_CLUSTER_ID')).toEqual([]);
    const destroyed = await infra('destroy', '--stack', bare, '--yes', '--endpoint', moto.endpoint);
    expect(destroyed.code).toBe(0);
  }, 120_000);

  it('deploying the same build again changes nothing', async () => {
    const again = await infra('deploy', '--stack', STACK, '--endpoint', moto.endpoint);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`${STACK}-artifacts: no changes`);
    expect(again.stdout).toContain('already uploaded');
    expect(again.stdout).toContain(`${STACK}: no changes`);
  }, 120_000);

  it('a new stack without a required parameter, or with one the template lacks, is refused before anything is created', async () => {
    const missing = await infra('deploy', '--stack', 'fresh', '--endpoint', moto.endpoint, '--parameters', 'DeletionProtection=false');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^deploy needs --parameters KeyAdministratorArn=…/m);
    const misspelt = await infra('deploy', '--stack', 'fresh', '--endpoint', moto.endpoint, '--parameters', `KeyAdministratorArn=arn:aws:iam::${ACCOUNT}:root`, 'DeletionProtektion=false');
    expect(misspelt.code).toBe(2);
    expect(misspelt.stderr).toMatch(/^the platform template has no parameter DeletionProtektion/m);
    const cloudFormation = new CloudFormationClient({ region: TEST_REGION, endpoint: moto.endpoint });
    const stacks = (await cloudFormation.send(new ListStacksCommand({}))).StackSummaries ?? [];
    expect(stacks.filter((stack) => stack.StackName?.startsWith('fresh'))).toEqual([]);
  }, 60_000);

  it('outputs prints both stacks outputs', async () => {
    const outputs = await infra('outputs', '--stack', STACK, '--endpoint', moto.endpoint);
    expect(outputs.code).toBe(0);
    expect(outputs.stdout).toMatch(/^ {2}ArtifactsBucketName +\S+$/m);
    expect(outputs.stdout).toMatch(/^ {2}LedgerTableName +itest-pseudonymization-erasure-ledger$/m);
  }, 60_000);

  it('destroy refuses without --yes off a terminal, then deletes both stacks with it', async () => {
    const refused = await infra('destroy', '--stack', STACK, '--endpoint', moto.endpoint);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('pass --yes');
    const destroyed = await infra('destroy', '--stack', STACK, '--yes', '--endpoint', moto.endpoint);
    expect(destroyed.stderr).not.toMatch(/Error/);
    expect(destroyed.code).toBe(0);
    expect(destroyed.stdout).toContain(`${STACK}: deleted`);
    expect(destroyed.stdout).toContain(`${STACK}-artifacts: deleted`);
    const gone = await infra('outputs', '--stack', STACK, '--endpoint', moto.endpoint);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain(`there is no stack ${STACK}-artifacts`);
  }, 120_000);
});

describe('the stack commands usage', () => {
  it.each([
    [['deploy', '--help'], 0, 'infra deploy  --stack NAME'],
    [['deploy'], 2, 'deploy needs --stack NAME'],
    [['deploy', '--stack', 'Bad_Name'], 2, '--stack: letters, digits and hyphens'],
    [['deploy', '--stack', 'ok', '--parameters', 'novalue'], 2, 'parameters are KEY=VALUE'],
    [['deploy', '--stack', 'ok', '--parameters', 'LambdaCodeKey=x'], 2, 'LambdaCodeKey is set by deploy'],
    [['outputs', '--stack', 'ok', '--parameters', 'A=1'], 2, 'outputs takes no parameters'],
    [['deploy', '--stack', 'ok', '--timeout', '0'], 2, '--timeout: minutes, a number above 0'],
    [['destroy', '--stack', 'ok', '--timeout', 'soon'], 2, '--timeout: minutes, a number above 0'],
  ])('%j exits %i', async (args, code, text) => {
    const result = await infra(...args);
    expect(result.code).toBe(code);
    expect(code === 0 ? result.stdout : result.stderr).toContain(text);
  }, 60_000);
});

describe('a stack that does not settle', () => {
  it('fails past the timeout, naming the stack and its status, instead of polling without end', async () => {
    // A change set created and never executed leaves a new stack in REVIEW_IN_PROGRESS: on moto, the one
    // *_IN_PROGRESS status that lasts (moto runs every operation to its end at once).
    const cloudFormation = new CloudFormationClient({ region: TEST_REGION, endpoint: moto.endpoint });
    const stuck = 'itest-stuck';
    await cloudFormation.send(new CreateChangeSetCommand({ StackName: stuck, ChangeSetName: 'never-executed', ChangeSetType: 'CREATE', TemplateBody: readFileSync('infra/cloudformation/bootstrap.yaml', 'utf8'), Parameters: [{ ParameterKey: 'EnvironmentName', ParameterValue: 'stuck' }] }));
    const printed: string[] = [];
    const operations = new StackOperations(cloudFormation, { write: (text: string) => printed.push(text) }, 20, 300);
    const waited = operations.waitUntilSettled(stuck, `deploy of ${stuck}`);
    await expect(waited).rejects.toBeInstanceOf(StackOperationError);
    await expect(waited).rejects.toThrow(new RegExp(`^deploy of ${stuck} timed out after 0\\.3 s: stack ${stuck} is still REVIEW_IN_PROGRESS.*deploy again once it has settled$`));
    await cloudFormation.send(new DeleteStackCommand({ StackName: stuck }));
  }, 60_000);
});

describe('a failed deployment names the resource that failed and why', () => {
  it('the first failure, not the cancellations it caused', () => {
    const event = (logicalId: string, type: string, status: ResourceStatus, reason: string): StackEvent => ({
      StackId: 'arn:aws:cloudformation:eu-west-1:123456789012:stack/prod/1',
      StackName: 'prod',
      EventId: `${logicalId}-${status}`,
      Timestamp: new Date(),
      LogicalResourceId: logicalId,
      ResourceType: type,
      ResourceStatus: status,
      ResourceStatusReason: reason,
    });
    const message = failureMessage('deploy of prod', {
      status: 'ROLLBACK_COMPLETE',
      events: [
        event('prod', 'AWS::CloudFormation::Stack', 'CREATE_IN_PROGRESS', 'User Initiated'),
        event('LedgerTable', 'AWS::DynamoDB::Table', 'CREATE_FAILED', 'Resource creation cancelled'),
        event('WarehouseBucket', 'AWS::S3::Bucket', 'CREATE_FAILED', 'prod-warehouse already exists'),
        event('prod', 'AWS::CloudFormation::Stack', 'ROLLBACK_IN_PROGRESS', 'The following resource(s) failed to create: [LedgerTable, WarehouseBucket].'),
      ],
    });
    expect(message).toBe('deploy of prod failed: WarehouseBucket (AWS::S3::Bucket) CREATE_FAILED: prod-warehouse already exists; the stack is ROLLBACK_COMPLETE');
  });
});
