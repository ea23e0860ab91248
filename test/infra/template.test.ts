/**
 * The CloudFormation templates, read without AWS: cfn-lint, the IAM policies through parliament and through a
 * small evaluator of what each role may and may not do, the properties of the resources moto's CloudFormation
 * does not create (secrets, bucket policies, Glue database, API stage, alarms: see deploy.test.ts), the ledger
 * table against the ledger's own definition, and the README's IAM table against the template.
 *
 * The templates are parsed by cfn-lint's own decoder (YAML with the short intrinsic tags) into JSON, then the
 * intrinsics are resolved here with made-up physical names and ARNs of the right shape.
 */
import { execFile, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { DYNAMO_LEDGER_TABLE } from '../../api/erasure/dynamoLedger.ts';

const run = promisify(execFile);
const PYTHON = '.venv/bin/python';
const PLATFORM = 'infra/cloudformation/platform.yaml';
const BOOTSTRAP = 'infra/cloudformation/bootstrap.yaml';
const ACCOUNT = '123456789012';
const REGION = 'eu-west-1';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = Record<string, Json>;
interface Resource {
  readonly Type: string;
  readonly Properties?: JsonObject;
  readonly Condition?: string;
}
interface Template {
  readonly Parameters?: Record<string, { readonly Default?: string | number }>;
  readonly Resources: Record<string, Resource>;
  readonly Conditions?: JsonObject;
}
interface Statement {
  readonly Sid?: string;
  readonly Effect: 'Allow' | 'Deny';
  readonly Action: string | string[];
  readonly Resource: string | string[];
  readonly Principal?: Json;
  readonly Condition?: Record<string, Record<string, string | string[]>>;
}

function decode(path: string): Template {
  const script = 'import json, sys\nfrom cfnlint.decode import decode\ntemplate, problems = decode(sys.argv[1])\nassert not problems, problems\nprint(json.dumps(template))';
  const result = spawnSync(PYTHON, ['-c', script, path], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`cannot decode ${path}: ${result.stderr}`);
  return JSON.parse(result.stdout) as Template;
}

const platform = decode(PLATFORM);
const bootstrap = decode(BOOTSTRAP);

const isObject = (value: Json | undefined): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value);
const NO_VALUE = Symbol('AWS::NoValue');

/** Resolves intrinsics with the given parameters; resources get made-up names and ARNs of the right shape. */
class Renderer {
  constructor(
    private readonly template: Template,
    private readonly parameters: Record<string, string>,
  ) {}

  condition(name: string): boolean {
    const definition = this.template.Conditions?.[name];
    if (definition === undefined) throw new Error(`no condition ${name}`);
    return this.truth(definition);
  }

  private truth(value: Json): boolean {
    if (!isObject(value)) throw new Error('a condition must be an object');
    const [fn, args] = Object.entries(value)[0]!;
    const list = Array.isArray(args) ? args : [args];
    switch (fn) {
      case 'Fn::Not':
        return !this.truth(list[0]!);
      case 'Fn::And':
        return list.every((item) => this.truth(item));
      case 'Fn::Or':
        return list.some((item) => this.truth(item));
      case 'Fn::Equals':
        return this.render(list[0]!) === this.render(list[1]!);
      case 'Condition':
        return this.condition(args as string);
      default:
        throw new Error(`condition function ${fn}`);
    }
  }

  private ref(name: string): string {
    const pseudo: Record<string, string> = { 'AWS::Region': REGION, 'AWS::AccountId': ACCOUNT, 'AWS::Partition': 'aws', 'AWS::URLSuffix': 'amazonaws.com' };
    if (name in pseudo) return pseudo[name]!;
    if (name in this.parameters) return this.parameters[name]!;
    const declared = this.template.Parameters?.[name];
    if (declared?.Default !== undefined) return String(declared.Default);
    const resource = this.template.Resources[name];
    if (!resource) throw new Error(`Ref to unknown ${name}`);
    const property = (key: string): string | undefined => {
      const value = resource.Properties?.[key];
      return value === undefined ? undefined : (this.render(value) as string);
    };
    switch (resource.Type) {
      case 'AWS::S3::Bucket':
        return `${name.toLowerCase()}-abc123`;
      case 'AWS::SecretsManager::Secret':
        return `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:${property('Name') ?? name}-AbCdEf`;
      case 'AWS::DynamoDB::Table':
        return property('TableName') ?? name;
      case 'AWS::Kinesis::Stream':
        return property('Name') ?? name;
      case 'AWS::Logs::LogGroup':
        return property('LogGroupName') ?? name;
      case 'AWS::Lambda::Function':
        return property('FunctionName') ?? name;
      case 'AWS::KMS::Key':
        return `${name.toLowerCase()}-0000-1111`;
      default:
        return name;
    }
  }

  private attribute(name: string, attribute: string): string {
    const resource = this.template.Resources[name];
    if (!resource) throw new Error(`GetAtt of unknown ${name}`);
    if (attribute === 'RootResourceId') return 'root';
    if (attribute !== 'Arn') throw new Error(`GetAtt ${name}.${attribute}`);
    const id = this.ref(name);
    const arns: Record<string, string> = {
      'AWS::IAM::Role': `arn:aws:iam::${ACCOUNT}:role/${id}`,
      'AWS::KMS::Key': `arn:aws:kms:${REGION}:${ACCOUNT}:key/${id}`,
      'AWS::DynamoDB::Table': `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${id}`,
      'AWS::Kinesis::Stream': `arn:aws:kinesis:${REGION}:${ACCOUNT}:stream/${id}`,
      'AWS::S3::Bucket': `arn:aws:s3:::${id}`,
      'AWS::Lambda::Function': `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${id}`,
      'AWS::Events::Rule': `arn:aws:events:${REGION}:${ACCOUNT}:rule/${id}`,
    };
    const arn = arns[resource.Type];
    if (!arn) throw new Error(`no ARN shape for ${resource.Type}`);
    return arn;
  }

  private substitute(text: string, variables: JsonObject = {}): string {
    return text.replace(/\$\{([^}]+)\}/g, (_whole, name: string) => {
      if (name in variables) return this.render(variables[name]!) as string;
      const dot = name.indexOf('.');
      return dot > 0 && !name.startsWith('AWS::') ? this.attribute(name.slice(0, dot), name.slice(dot + 1)) : this.ref(name);
    });
  }

  render(value: Json): Json | typeof NO_VALUE {
    if (Array.isArray(value)) return value.map((item) => this.render(item)).filter((item): item is Json => item !== NO_VALUE);
    if (!isObject(value)) return value;
    const keys = Object.keys(value);
    if (keys.length === 1) {
      const [fn] = keys as [string];
      const args = value[fn]!;
      switch (fn) {
        case 'Ref':
          return args === 'AWS::NoValue' ? NO_VALUE : this.ref(args as string);
        case 'Fn::GetAtt': {
          const [name, attribute] = Array.isArray(args) ? (args as string[]) : (args as string).split('.');
          return this.attribute(name!, attribute!);
        }
        case 'Fn::Sub':
          return Array.isArray(args) ? this.substitute(args[0] as string, args[1] as JsonObject) : this.substitute(args as string);
        case 'Fn::If': {
          const [condition, whenTrue, whenFalse] = args as [string, Json, Json];
          return this.render(this.condition(condition) ? whenTrue : whenFalse);
        }
        case 'Fn::Join': {
          const [separator, items] = args as [string, Json[]];
          return (this.render(items) as Json[]).map((item) => (typeof item === 'string' ? item : JSON.stringify(item))).join(separator);
        }
        default:
          break;
      }
    }
    const out: JsonObject = {};
    for (const [key, item] of Object.entries(value)) {
      const rendered = this.render(item);
      if (rendered !== NO_VALUE) out[key] = rendered;
    }
    return out;
  }

  properties(logicalId: string): JsonObject {
    const resource = this.template.Resources[logicalId];
    if (!resource) throw new Error(`no resource ${logicalId}`);
    return this.render(resource.Properties ?? {}) as JsonObject;
  }
}

/** Every condition true: the fullest set of permissions (a registry and a cluster configured). */
const FULL = { EnvironmentName: 'prod', ArtifactsBucket: 'prod-artifacts-bucket', LambdaCodeKey: `lambda/${'0'.repeat(64)}.zip`, KeyAdministratorArn: `arn:aws:iam::${ACCOUNT}:role/key-admin`, KeyringName: 'default', ErasureRegistryFile: 'config/erasure-registry.json', EmrClusterId: 'j-ABC123', ProducerPrincipalArn: '', DeletionProtection: 'true', ErasureJobKey: 'spark/erasure/job.py', ErasurePyFilesKey: `spark/${'1'.repeat(64)}/spark_udfs-0.1.0.zip` };
const full = new Renderer(platform, FULL);
/** Erasure off: no registry, no cluster. */
const minimal = new Renderer(platform, { ...FULL, ErasureRegistryFile: '', EmrClusterId: '' });

const ROLES = ['ApiFunctionRole', 'ErasureStepRole', 'EmrJobRole', 'EmrServiceRole', 'ProducerRole'] as const;
type Role = (typeof ROLES)[number];

function policyResources(template: Template, role: Role): string[] {
  return Object.entries(template.Resources)
    .filter(([, resource]) => resource.Type === 'AWS::IAM::Policy' && JSON.stringify(resource.Properties?.Roles).includes(`"${role}"`))
    .map(([logicalId]) => logicalId);
}

/** The statements a role gets with the renderer's parameters: a policy whose Condition is false is not created. */
function statementsOf(renderer: Renderer, role: Role): Statement[] {
  return policyResources(platform, role)
    .filter((logicalId) => {
      const condition = platform.Resources[logicalId]!.Condition;
      return condition === undefined || renderer.condition(condition);
    })
    .flatMap((logicalId) => (renderer.properties(logicalId).PolicyDocument as unknown as { Statement: Statement[] }).Statement);
}

const list = (value: string | string[]): string[] => (Array.isArray(value) ? value : [value]);
const glob = (pattern: string, text: string): boolean => new RegExp(`^${pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`).test(text);

/** Whether some Allow statement grants the action on the resource (conditions ignored: they only narrow). */
function allows(statements: readonly Statement[], action: string, resource: string): boolean {
  return statements.some((statement) => statement.Effect === 'Allow' && list(statement.Action).some((pattern) => glob(pattern, action)) && list(statement.Resource).some((pattern) => glob(pattern, resource)));
}

const arn = {
  ledger: `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/prod-pseudonymization-erasure-ledger`,
  stream: `arn:aws:kinesis:${REGION}:${ACCOUNT}:stream/prod-pseudonymization-records`,
  otherStream: `arn:aws:kinesis:${REGION}:${ACCOUNT}:stream/someone-else`,
  warehouseObject: 'arn:aws:s3:::warehousebucket-abc123/warehouse/crm/customers/data/00000-0.parquet',
  warehouseRun: 'arn:aws:s3:::warehousebucket-abc123/erasure-runs/run-1/order.json',
  warehouse: 'arn:aws:s3:::warehousebucket-abc123',
  artifactsJob: 'arn:aws:s3:::prod-artifacts-bucket/spark/erasure/job.py',
  glueTable: `arn:aws:glue:${REGION}:${ACCOUNT}:table/prod_warehouse/customers`,
  glueDatabase: `arn:aws:glue:${REGION}:${ACCOUNT}:database/prod_warehouse`,
  otherGlueTable: `arn:aws:glue:${REGION}:${ACCOUNT}:table/finance/ledger`,
  cluster: `arn:aws:elasticmapreduce:${REGION}:${ACCOUNT}:cluster/j-ABC123`,
  otherCluster: `arn:aws:elasticmapreduce:${REGION}:${ACCOUNT}:cluster/j-OTHER`,
  keyringKey: `arn:aws:kms:${REGION}:${ACCOUNT}:key/keyringkey-0000-1111`,
  dataKey: `arn:aws:kms:${REGION}:${ACCOUNT}:key/datakey-0000-1111`,
  keyringSecret: `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:prod/pseudonymization/keyring-AbCdEf`,
  jobRole: `arn:aws:iam::${ACCOUNT}:role/EmrJobRole`,
};

describe('the templates', () => {
  it('pass cfn-lint without a finding', async () => {
    const result = await run('.venv/bin/cfn-lint', [PLATFORM, BOOTSTRAP]).then(
      ({ stdout }) => ({ code: 0, stdout }),
      (error: unknown) => {
        const failed = error as { code: number; stdout: string };
        return { code: failed.code, stdout: failed.stdout };
      },
    );
    expect(result.stdout).toBe('');
    expect(result.code).toBe(0);
  });
});

describe('IAM: one role per component, least privilege', () => {
  it('names every action and resource: no wildcard action, no Resource "*" in any role policy', () => {
    for (const role of ROLES) {
      for (const statement of statementsOf(full, role)) {
        for (const action of list(statement.Action)) expect(action, `${role} ${statement.Sid ?? ''}`).not.toContain('*');
        for (const resource of list(statement.Resource)) expect(resource, `${role} ${statement.Sid ?? ''}`).not.toBe('*');
      }
    }
  });

  it('gives each component its own role, assumed only by that component', () => {
    const trusted = (role: Role): Json => (full.properties(role).AssumeRolePolicyDocument as { Statement: { Principal: Json }[] }).Statement.map((statement) => statement.Principal);
    expect(trusted('ApiFunctionRole')).toEqual([{ Service: 'lambda.amazonaws.com' }]);
    expect(trusted('ErasureStepRole')).toEqual([{ Service: 'lambda.amazonaws.com' }]);
    expect(trusted('EmrJobRole')).toEqual([{ Service: 'ec2.amazonaws.com' }]);
    expect(trusted('EmrServiceRole')).toEqual([{ Service: 'elasticmapreduce.amazonaws.com' }]);
    expect(trusted('ProducerRole')).toEqual([{ AWS: `arn:aws:iam::${ACCOUNT}:root` }]);
    expect(full.properties('EmrInstanceProfile').Roles).toEqual(['EmrJobRole']);
    expect(full.properties('ApiFunction').Role).toBe(`arn:aws:iam::${ACCOUNT}:role/ApiFunctionRole`);
    expect(full.properties('ErasureStepFunction').Role).toBe(`arn:aws:iam::${ACCOUNT}:role/ErasureStepRole`);
  });

  it('parliament finds nothing in any role policy', async () => {
    const findings: string[] = [];
    for (const role of ROLES) {
      for (const logicalId of policyResources(platform, role)) {
        const document = JSON.stringify(full.properties(logicalId).PolicyDocument);
        const { stdout } = await run('.venv/bin/parliament', ['--string', document, '--json'], { env: { ...process.env, PYTHONWARNINGS: 'ignore' } });
        for (const line of stdout.split('\n').filter(Boolean)) findings.push(`${logicalId}: ${line}`);
      }
    }
    expect(findings).toEqual([]);
  });

  // [role, action, resource, allowed]
  const matrix: [Role, string, string, boolean][] = [
    ['ApiFunctionRole', 'dynamodb:Query', arn.ledger, true],
    // TransactWriteItems has no IAM action of its own: each item is authorized as PutItem, UpdateItem, DeleteItem or ConditionCheckItem.
    ['ApiFunctionRole', 'dynamodb:PutItem', arn.ledger, true],
    ['ApiFunctionRole', 'dynamodb:ConditionCheckItem', arn.ledger, true],
    ['ApiFunctionRole', 'secretsmanager:GetSecretValue', arn.keyringSecret, true],
    ['ApiFunctionRole', 'secretsmanager:PutSecretValue', arn.keyringSecret, false],
    ['ApiFunctionRole', 'kms:Decrypt', arn.keyringKey, true],
    ['ApiFunctionRole', 'kms:GenerateDataKey', arn.keyringKey, false],
    ['ApiFunctionRole', 's3:GetObject', arn.warehouseObject, false],
    ['ApiFunctionRole', 's3:GetObject', arn.warehouseRun, false],
    ['ApiFunctionRole', 'elasticmapreduce:AddJobFlowSteps', arn.cluster, false],
    ['ApiFunctionRole', 'glue:GetTable', arn.glueTable, true],
    ['ApiFunctionRole', 'glue:UpdateTable', arn.glueTable, false],
    ['ApiFunctionRole', 'kinesis:PutRecords', arn.stream, false],
    ['ApiFunctionRole', 'dynamodb:DeleteTable', arn.ledger, false],
    ['ErasureStepRole', 'elasticmapreduce:AddJobFlowSteps', arn.cluster, true],
    ['ErasureStepRole', 'elasticmapreduce:DescribeStep', arn.cluster, true],
    ['ErasureStepRole', 'elasticmapreduce:AddJobFlowSteps', arn.otherCluster, false],
    ['ErasureStepRole', 'elasticmapreduce:TerminateJobFlows', arn.cluster, false],
    ['ErasureStepRole', 's3:PutObject', arn.warehouseRun, true],
    ['ErasureStepRole', 's3:GetObject', arn.warehouseObject, false],
    ['ErasureStepRole', 's3:DeleteObject', arn.warehouseRun, false],
    ['ErasureStepRole', 'dynamodb:UpdateItem', arn.ledger, true],
    ['ErasureStepRole', 'kinesis:GetRecords', arn.stream, false],
    ['ErasureStepRole', 'iam:PassRole', arn.jobRole, false],
    ['EmrJobRole', 's3:DeleteObject', arn.warehouseObject, true],
    ['EmrJobRole', 's3:GetObject', arn.artifactsJob, true],
    ['EmrJobRole', 's3:PutObject', arn.artifactsJob, false],
    ['EmrJobRole', 'glue:UpdateTable', arn.glueTable, true],
    ['EmrJobRole', 'glue:UpdateTable', arn.otherGlueTable, false],
    ['EmrJobRole', 'glue:DeleteDatabase', arn.glueDatabase, false],
    ['EmrJobRole', 'kinesis:GetRecords', arn.stream, true],
    ['EmrJobRole', 'kinesis:PutRecords', arn.stream, false],
    ['EmrJobRole', 'secretsmanager:GetSecretValue', arn.keyringSecret, false],
    ['EmrJobRole', 'kms:Decrypt', arn.keyringKey, false],
    ['EmrJobRole', 'dynamodb:GetItem', arn.ledger, false],
    ['EmrServiceRole', 'iam:PassRole', arn.jobRole, true],
    ['EmrServiceRole', 's3:GetObject', arn.warehouseObject, false],
    ['ProducerRole', 'kinesis:PutRecord', arn.stream, true],
    ['ProducerRole', 'kinesis:PutRecords', arn.stream, true],
    ['ProducerRole', 'kinesis:PutRecords', arn.otherStream, false],
    ['ProducerRole', 'kinesis:GetRecords', arn.stream, false],
    ['ProducerRole', 'kinesis:DeleteStream', arn.stream, false],
    ['ProducerRole', 'kms:Decrypt', arn.dataKey, false],
    ['ProducerRole', 's3:PutObject', arn.warehouseObject, false],
  ];
  it.each(matrix)('%s: %s on %s is allowed: %s', (role, action, resource, allowed) => {
    expect(allows(statementsOf(full, role), action, resource)).toBe(allowed);
  });

  it('the producer may only put records on the stream (and get the stream key data key through Kinesis)', () => {
    const statements = statementsOf(full, 'ProducerRole');
    expect(statements.flatMap((statement) => list(statement.Action)).sort()).toEqual(['kinesis:PutRecord', 'kinesis:PutRecords', 'kms:GenerateDataKey']);
    const kms = statements.find((statement) => list(statement.Action).includes('kms:GenerateDataKey'))!;
    expect(kms.Condition).toEqual({ StringEquals: { 'kms:ViaService': `kinesis.${REGION}.amazonaws.com` } });
  });

  it('no policy statement is chosen by !If inside a Statement list (moto keeps AWS::NoValue list items as null): a conditional permission is a policy resource with a Condition', () => {
    for (const [logicalId, resource] of Object.entries(platform.Resources).filter(([, candidate]) => candidate.Type === 'AWS::IAM::Policy')) {
      for (const statement of (resource.Properties!.PolicyDocument as { Statement: Json[] }).Statement) expect(isObject(statement) && 'Fn::If' in statement, logicalId).toBe(false);
    }
    expect(platform.Resources.ApiRegisteredTablesPolicy!.Condition).toBe('HasErasureRegistry');
    expect(platform.Resources.ErasureStepEmrPolicy!.Condition).toBe('HasEmrCluster');
  });

  it('without a registry the API Lambda has no Glue permission at all, and without a cluster the erasure step none on EMR', () => {
    expect(statementsOf(minimal, 'ApiFunctionRole').flatMap((statement) => list(statement.Action)).filter((action) => action.startsWith('glue:'))).toEqual([]);
    expect(statementsOf(minimal, 'ErasureStepRole').flatMap((statement) => list(statement.Action)).filter((action) => action.startsWith('elasticmapreduce:'))).toEqual([]);
    expect(minimal.properties('ErasureStepSchedule').State).toBe('DISABLED');
    expect(full.properties('ErasureStepSchedule').State).toBe('ENABLED');
  });

  it('every kms:Decrypt of the keyring key in a role policy is bound to the keyring encryption context', () => {
    const keyringSource = readFileSync('api/keyring/kmsWrappedKeys.ts', 'utf8');
    expect(keyringSource).toContain("purpose: 'pseudonymization-keyring', keyring: keyringName");
    for (const role of ROLES) {
      for (const statement of statementsOf(full, role).filter((candidate) => list(candidate.Resource).includes(arn.keyringKey))) {
        expect(list(statement.Action)).toEqual(['kms:Decrypt']);
        expect(statement.Condition).toEqual({ StringEquals: { 'kms:EncryptionContext:purpose': 'pseudonymization-keyring', 'kms:EncryptionContext:keyring': 'default' } });
      }
    }
  });
});

describe('KMS key policies', () => {
  const statements = (key: string): Statement[] => (full.properties(key).KeyPolicy as unknown as { Statement: Statement[] }).Statement;

  it('keyring key: administrators manage and create key versions but cannot Decrypt; the two functions may only Decrypt, with the keyring context', () => {
    const [admin, functions, ...others] = statements('KeyringKey');
    expect(others).toEqual([]);
    expect(admin!.Principal).toEqual({ AWS: FULL.KeyAdministratorArn });
    expect(list(admin!.Action)).toContain('kms:GenerateDataKey');
    expect(list(admin!.Action)).not.toContain('kms:Decrypt');
    expect(list(admin!.Action).every((action) => !action.includes('*'))).toBe(true);
    expect(functions!.Principal).toEqual({ AWS: [`arn:aws:iam::${ACCOUNT}:role/ApiFunctionRole`, `arn:aws:iam::${ACCOUNT}:role/ErasureStepRole`] });
    expect(functions!.Action).toBe('kms:Decrypt');
    expect(functions!.Condition).toEqual({ StringEquals: { 'kms:EncryptionContext:purpose': 'pseudonymization-keyring', 'kms:EncryptionContext:keyring': 'default' } });
    // No statement for the account root: an IAM policy elsewhere in the account cannot open this key.
    expect(JSON.stringify(statements('KeyringKey'))).not.toContain(':root');
  });

  it('data key: components only through the services that store their data', () => {
    const components = statements('DataKey').find((statement) => statement.Sid === 'ComponentsThroughServices')!;
    expect(list(components.Action).sort()).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
    expect(Object.keys(components.Condition!.StringEquals!)).toEqual(['kms:ViaService']);
    expect(JSON.stringify(statements('DataKey'))).not.toContain(':root');
  });
});

describe('resources moto does not create, by their rendered properties', () => {
  it('the keyring and API key secrets are encrypted with the data key and created empty (keys create writes them)', () => {
    for (const secret of ['KeyringSecret', 'ApiKeysSecret']) {
      const properties = full.properties(secret);
      expect(properties.KmsKeyId).toBe('datakey-0000-1111');
      expect(properties.SecretString).toBeUndefined();
      expect(properties.GenerateSecretString).toBeUndefined();
    }
  });

  it('both buckets refuse plain HTTP for every S3 action', () => {
    for (const [renderer, policy, bucket] of [
      [full, 'WarehouseBucketPolicy', 'WarehouseBucket'],
      [new Renderer(bootstrap, { EnvironmentName: 'prod' }), 'ArtifactsBucketPolicy', 'ArtifactsBucket'],
    ] as const) {
      const document = renderer.properties(policy).PolicyDocument as unknown as { Statement: Statement[] };
      expect(document.Statement).toEqual([
        {
          Sid: 'DenyInsecureTransport',
          Effect: 'Deny',
          Principal: '*',
          Action: 's3:*',
          Resource: [`arn:aws:s3:::${bucket.toLowerCase()}-abc123`, `arn:aws:s3:::${bucket.toLowerCase()}-abc123/*`],
          Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        },
      ]);
    }
  });

  it('the Glue database is the environment warehouse, in the account catalog', () => {
    expect(full.properties('GlueDatabase')).toMatchObject({ CatalogId: ACCOUNT, DatabaseInput: { Name: 'prod_warehouse', LocationUri: 's3://warehousebucket-abc123/warehouse' } });
  });

  it('the API stage throttles, keeps metrics and never logs bodies', () => {
    const stage = full.properties('ApiStage');
    expect(stage.StageName).toBe('api');
    expect(stage.MethodSettings).toEqual([{ ResourcePath: '/*', HttpMethod: '*', ThrottlingRateLimit: '1000', ThrottlingBurstLimit: '2000', MetricsEnabled: true, DataTraceEnabled: false, LoggingLevel: 'OFF' }]);
  });

  it('alarms on 5xx, p99 latency, throttles, errors and the oldest open erasure request, to the alarm topic', () => {
    const alarms = Object.entries(platform.Resources)
      .filter(([, resource]) => resource.Type === 'AWS::CloudWatch::Alarm')
      .map(([logicalId]) => full.properties(logicalId));
    const summary = alarms.map((alarm) => `${alarm.Namespace as string} ${alarm.MetricName as string} ${(alarm.ExtendedStatistic ?? alarm.Statistic) as string}`);
    expect(summary).toEqual(['AWS/ApiGateway 5XXError Sum', 'AWS/ApiGateway Latency p99', 'AWS/Lambda Throttles Sum', 'AWS/Lambda Errors Sum', 'AWS/Lambda Errors Sum', 'Pseudonymization OldestOpenRequestAgeSeconds Maximum']);
    for (const alarm of alarms) expect(alarm.AlarmActions).toEqual(['AlarmTopic']);
    expect(full.properties('ApiLatencyP99Alarm').Threshold).toBe('50');
    // 25 days by default: before GDPR's month runs out. The step function writes the gauge (lambda/erasureStep.ts).
    expect(full.properties('ErasureOldestOpenAlarm').Threshold).toBe('2160000');
  });
});


describe('resources moto creates, as the template declares them', () => {
  it('the ledger table has the key schema and index of DYNAMO_LEDGER_TABLE, point-in-time recovery and SSE with the data key', () => {
    const table = full.properties('LedgerTable');
    expect(table.AttributeDefinitions).toEqual(DYNAMO_LEDGER_TABLE.AttributeDefinitions);
    expect(table.KeySchema).toEqual(DYNAMO_LEDGER_TABLE.KeySchema);
    expect(table.GlobalSecondaryIndexes).toEqual(DYNAMO_LEDGER_TABLE.GlobalSecondaryIndexes);
    expect(table.BillingMode).toBe(DYNAMO_LEDGER_TABLE.BillingMode);
    expect(table.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
    expect(table.SSESpecification).toEqual({ SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: 'datakey-0000-1111' });
    expect(table.DeletionProtectionEnabled).toBe(true);
  });

  it('the functions run the zip on nodejs22.x arm64 with memory and reserved concurrency from the parameters', () => {
    const api = full.properties('ApiFunction');
    expect(api).toMatchObject({ Runtime: 'nodejs22.x', Architectures: ['arm64'], Handler: 'handler.restApiHandler', MemorySize: '1024', ReservedConcurrentExecutions: '50', Code: { S3Bucket: FULL.ArtifactsBucket, S3Key: FULL.LambdaCodeKey } });
    expect(full.properties('ErasureStepFunction')).toMatchObject({ Runtime: 'nodejs22.x', Architectures: ['arm64'], Handler: 'erasureStep.erasureStepHandler' });
    expect(readFileSync('lambda/handler.ts', 'utf8')).toMatch(/export (const|async function) restApiHandler/);
    expect(readFileSync('lambda/erasureStep.ts', 'utf8')).toContain('export async function erasureStepHandler');
    for (const group of ['ApiLogGroup', 'ErasureStepLogGroup']) expect(full.properties(group).RetentionInDays).toBe('30');
  });

  it('the functions get the configuration keys the service reads, with the AWS keyring and the DynamoDB ledger', () => {
    const variables = (full.properties('ErasureStepFunction').Environment as { Variables: Record<string, string> }).Variables;
    const config = readFileSync('api/config/config.ts', 'utf8');
    for (const key of Object.keys(variables)) expect(config, key).toContain(`${key}:`);
    expect(variables).toMatchObject({ PSEUDO_KEYRING: 'aws', PSEUDO_ERASURE_LEDGER: 'dynamodb', PSEUDO_ERASURE_RUNNER: 'emr', PSEUDO_ERASURE_EMR_CLUSTER_ID: 'j-ABC123', PSEUDO_ERASURE_EMR_WORK_URI: 's3://warehousebucket-abc123/erasure-runs', PSEUDO_ERASURE_EMR_PY_FILES: `s3://prod-artifacts-bucket/spark/${'1'.repeat(64)}/spark_udfs-0.1.0.zip` });
    const without = (new Renderer(platform, { ...FULL, ErasurePyFilesKey: '' }).properties('ErasureStepFunction').Environment as { Variables: Record<string, string> }).Variables;
    expect(without.PSEUDO_ERASURE_EMR_PY_FILES).toBeUndefined();
  });

  it('the REST API accepts Arrow bodies as binary', () => {
    expect(full.properties('RestApi').BinaryMediaTypes).toEqual(['application/vnd.apache.arrow.stream']);
  });

  it('the warehouse bucket is unversioned (erased files leave no old version), SSE-KMS with the data key, public access blocked', () => {
    const bucket = full.properties('WarehouseBucket');
    expect(bucket.VersioningConfiguration).toBeUndefined();
    expect(bucket.BucketEncryption).toEqual({ ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: arn.dataKey }, BucketKeyEnabled: true }] });
    expect(bucket.PublicAccessBlockConfiguration).toEqual({ BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true });
  });

  it('the artifacts bucket is versioned with old versions expiring, SSE-KMS, public access blocked', () => {
    const bucket = new Renderer(bootstrap, { EnvironmentName: 'prod' }).properties('ArtifactsBucket');
    expect(bucket.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(JSON.stringify(bucket.LifecycleConfiguration)).toContain('"NoncurrentDays":90');
    expect(JSON.stringify(bucket.BucketEncryption)).toContain('"SSEAlgorithm":"aws:kms"');
    expect(bucket.PublicAccessBlockConfiguration).toEqual({ BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true });
  });

  it('the stream is on-demand and encrypted with the data key', () => {
    expect(full.properties('RecordStream')).toMatchObject({ StreamModeDetails: { StreamMode: 'ON_DEMAND' }, StreamEncryption: { EncryptionType: 'KMS', KeyId: 'datakey-0000-1111' } });
  });
});

/**
 * The deploying principal's policy (infra/iam/deployer-policy.json, written for stack `prod` in account
 * 111122223333, eu-west-1): what `npm run infra -- deploy|destroy` calls itself, and what CloudFormation calls with
 * the deployer's credentials for each resource type (no CloudFormation service role). The handlers' permissions
 * come from CloudFormation's resource provider schemas, which cfn-lint ships.
 */
describe('the deployer policy', () => {
  const DEPLOYER = 'infra/iam/deployer-policy.json';
  const deployer = JSON.parse(readFileSync(DEPLOYER, 'utf8')) as { Statement: Statement[] };
  const granted = new Set(deployer.Statement.flatMap((statement) => list(statement.Action)));
  const types = [...new Set([...readFileSync(PLATFORM, 'utf8').matchAll(/Type: (AWS::[\w:]+)/g), ...readFileSync(BOOTSTRAP, 'utf8').matchAll(/Type: (AWS::[\w:]+)/g)].map((match) => match[1]!))].sort();
  const script = [
    'import glob, json, os, sys, cfnlint',
    "folder = os.path.join(os.path.dirname(cfnlint.__file__), 'data', 'schemas', 'resources')",
    'wanted = set(sys.argv[1:]); found = {}',
    "for path in glob.glob(os.path.join(folder, '*.json')):",
    '    schema = json.load(open(path))',
    "    if schema.get('typeName') in wanted:",
    "        found[schema['typeName']] = {k: v.get('permissions', []) for k, v in schema.get('handlers', {}).items()}",
    'print(json.dumps(found))',
  ].join('\n');
  const handlers = JSON.parse(spawnSync(PYTHON, ['-c', script, ...types], { encoding: 'utf8' }).stdout) as Record<string, Record<string, string[]>>;
  /** What the deploy command calls itself (infra/deploy/stack.ts, artifacts.ts, infra/artifacts/upload.ts). */
  const COMMAND_CALLS = ['cloudformation:CreateChangeSet', 'cloudformation:DescribeChangeSet', 'cloudformation:ExecuteChangeSet', 'cloudformation:DeleteChangeSet', 'cloudformation:DescribeStacks', 'cloudformation:DescribeStackEvents', 'cloudformation:DeleteStack', 's3:PutObject', 's3:ListBucketVersions', 's3:DeleteObjectVersion'];
  /**
   * Create/delete handler permissions of the resource's own service that are not granted, and why: each belongs
   * to a property the templates do not set, or the key policies grant it (they name the key administrator, who
   * must be the deployer, and have no account-root statement, so IAM cannot grant these at all).
   */
  const NOT_GRANTED: Record<string, string> = {
    'glue:(Create|Delete|Get|Pass)Connection': 'no Glue connection',
    'dynamodb:(AssociateTableReplica|CreateTableReplica|ImportTable|DescribeImport|(Enable|Disable)KinesisStreamingDestination|UpdateContributorInsights|UpdateTimeToLive|PutResourcePolicy)': 'no replicas, import, streaming destination, contributor insights, TTL or resource policy',
    'dynamodb:(BatchWriteItem|PutItem|UpdateItem|DeleteItem|GetItem|Query|Scan)': 'item access: only for an import; the deployer reads no ledger entry',
    'sns:(PutDataProtectionPolicy|Subscribe)': 'no data protection policy; subscriptions are added outside the stack',
    's3:(CreateBucketMetadataTableConfiguration|GetBucketMetadataTableConfiguration|PutAccelerateConfiguration|PutAnalyticsConfiguration|PutBucketAbac|PutBucketCORS|PutBucketLogging|PutBucketNotification|PutBucketObjectLockConfiguration|PutBucketReplication|PutBucketWebsite|PutIntelligentTieringConfiguration|PutInventoryConfiguration|PutMetricsConfiguration|PutObjectAcl|PutObjectLockConfiguration|PutReplicationConfiguration)': 'bucket features the templates do not use',
    'kinesis:(EnableEnhancedMonitoring|UpdateMaxRecordSize|UpdateStreamWarmThroughput)': 'no enhanced monitoring, record size or warm throughput set',
    'secretsmanager:(GetRandomPassword|ReplicateSecretToRegions|RemoveRegionsFromReplication)': 'secrets are created empty, in one region',
    'lambda:(AssociateRuntimeAlias|GetCodeSigningConfig|GetLayerVersion|PassCapacityProvider|PutFunctionRecursionConfig|PutFunctionScalingConfig|PutRuntimeManagementConfig)': 'no code signing, layers, capacity provider, recursion, scaling or runtime management settings',
    'kms:(DescribeKey|DisableKey|EnableKeyRotation|PutKeyPolicy|ScheduleKeyDeletion|TagResource)': 'granted by the key policies to KeyAdministratorArn',
    'logs:(CreateLogDelivery|DeleteDataProtectionPolicy|DescribeIndexPolicies|DescribeResourcePolicies|PutBearerTokenAuthentication|PutDataProtectionPolicy|PutIndexPolicy|PutResourcePolicy)': 'no data protection, index or resource policy, delivery or bearer token on the log groups',
    'apigateway:UpdateRestApiPolicy': 'no resource policy on the REST API',
    'iam:(Delete|Get|Put)(Group|User)Policy': 'policies attach to roles only',
  };
  const excused = (action: string): boolean => Object.keys(NOT_GRANTED).some((pattern) => new RegExp(`^${pattern}$`).test(action));
  const serviceOf = (type: string): string => ({ CloudWatch: 'cloudwatch', ApiGateway: 'apigateway', SecretsManager: 'secretsmanager', Logs: 'logs' })[type.split('::')[1]!] ?? type.split('::')[1]!.toLowerCase();

  it('grants every create and delete permission CloudFormation documents for each resource type, except those excused', () => {
    expect(Object.keys(handlers).sort()).toEqual(types);
    const missing = types.flatMap((type) => ['create', 'delete'].flatMap((handler) => (handlers[type]![handler] ?? []).filter((action) => action.startsWith(`${serviceOf(type)}:`) && !granted.has(action) && !excused(action)).map((action) => `${type} ${handler}: ${action}`)));
    expect(missing).toEqual([]);
  });

  it('grants nothing that neither the deploy command nor a resource handler calls', () => {
    const documented = new Set([...COMMAND_CALLS, ...Object.values(handlers).flatMap((byHandler) => Object.values(byHandler).flat())]);
    expect([...granted].filter((action) => !documented.has(action))).toEqual([]);
  });

  it('names its resources: no wildcard action, Resource "*" only for actions without resource-level permissions', () => {
    for (const statement of deployer.Statement) {
      for (const action of list(statement.Action)) expect(action).not.toContain('*');
      if (list(statement.Resource).includes('*')) for (const action of list(statement.Action)) expect(['kms:CreateKey', 'kms:ListAliases', 'logs:DescribeLogGroups']).toContain(action);
    }
  });

  it('may pass only the stack roles, each to the service that uses it', () => {
    const passing = deployer.Statement.filter((statement) => list(statement.Action).includes('iam:PassRole'));
    expect(passing.map((statement) => [list(statement.Action), list(statement.Resource), statement.Condition])).toEqual([
      [['iam:PassRole'], ['arn:aws:iam::111122223333:role/prod-ApiFunctionRole-*', 'arn:aws:iam::111122223333:role/prod-ErasureStepRole-*'], { StringEquals: { 'iam:PassedToService': 'lambda.amazonaws.com' } }],
      [['iam:PassRole'], ['arn:aws:iam::111122223333:role/prod-EmrJobRole-*'], { StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' } }],
    ]);
  });

  it('parliament: only the two findings it cannot know better', async () => {
    // parliament exits 1 when it reports anything; the findings are on stdout either way.
    const stdout = await run('.venv/bin/parliament', ['--string', JSON.stringify(deployer), '--json'], { env: { ...process.env, PYTHONWARNINGS: 'ignore' } }).then(
      (result) => result.stdout,
      (error: unknown) => (error as { stdout: string }).stdout,
    );
    const findings = stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { issue: string; detail: string | unknown[]; location: { string?: string } });
    const handlerActions = new Set(Object.values(handlers).flatMap((byHandler) => Object.values(byHandler).flat()));
    // Actions CloudFormation's schemas list that parliament's action database predates.
    const unknown = findings.filter((finding) => finding.issue === 'UNKNOWN_ACTION');
    for (const finding of unknown) expect(handlerActions.has(finding.location.string ?? '')).toBe(true);
    // Managing a bucket's policy and lifecycle is what deploying it means; the deployer gets no object access to the warehouse.
    const escalation = findings.filter((finding) => finding.issue === 'RESOURCE_POLICY_PRIVILEGE_ESCALATION');
    for (const finding of escalation) expect(finding.detail).toMatch(/^Possible resource policy privilege escalation on arn:aws:s3:::prod-warehousebucket-\* /);
    expect(findings.filter((finding) => finding.issue !== 'UNKNOWN_ACTION' && finding.issue !== 'RESOURCE_POLICY_PRIVILEGE_ESCALATION')).toEqual([]);
    expect(granted.has('s3:GetObject') && deployer.Statement.some((statement) => list(statement.Action).includes('s3:GetObject') && list(statement.Resource).some((resource) => resource.includes('warehouse')))).toBe(false);
  });

  it('the README points to it', () => {
    expect(readFileSync('README.md', 'utf8')).toContain('infra/iam/deployer-policy.json');
  });
});

/**
 * The README's IAM table, generated from the template: component, actions, resources (symbolic: logical ids and
 * <env>), and the condition keys that narrow the statement.
 */
function iamTable(): string {
  const components: Record<Role, string> = {
    ApiFunctionRole: 'API Lambda (`ApiFunctionRole`)',
    ErasureStepRole: 'erasure step Lambda (`ErasureStepRole`)',
    EmrJobRole: 'EMR jobs: batch, streaming, erasure (`EmrJobRole`, instance profile `EmrInstanceProfile`)',
    EmrServiceRole: 'EMR service (`EmrServiceRole`, plus the AWS managed `AmazonEMRServicePolicy_v2`)',
    ProducerRole: 'producer (`ProducerRole`)',
  };
  const conditionsOf: Record<string, string> = { HasErasureRegistry: 'with a registry', HasEmrCluster: 'with a cluster' };
  const symbolic = (value: Json): string => {
    if (typeof value === 'string') return value;
    if (!isObject(value)) return JSON.stringify(value);
    if ('Ref' in value) return value.Ref as string; // resources only: every policy names resources by Ref or GetAtt
    if ('Fn::GetAtt' in value) return (value['Fn::GetAtt'] as string[])[0]!;
    if ('Fn::Sub' in value) {
      return (value['Fn::Sub'] as string)
        .replace('arn:${AWS::Partition}:', '')
        .replace('${AWS::Region}:${AWS::AccountId}:', '')
        .replace(/\$\{EnvironmentName\}/g, '<env>')
        .replace(/\$\{([A-Za-z]+)(\.Arn)?\}/g, (_whole, name: string) => (name in platform.Resources ? name : `<${name}>`));
    }
    return JSON.stringify(value);
  };
  const rows = ['| component | actions | resources | condition |', '|---|---|---|---|'];
  for (const role of ROLES) {
    let component = components[role];
    for (const logicalId of policyResources(platform, role)) {
      const { Properties, Condition } = platform.Resources[logicalId]!;
      const statements = (Properties!.PolicyDocument as { Statement: Json[] }).Statement;
      const when = Condition === undefined ? '' : (conditionsOf[Condition] ?? Condition);
      for (const raw of statements) {
        const statement = raw as JsonObject;
        const actions = list(statement.Action as string | string[]).map((action) => `\`${action}\``).join(', ');
        const resources = (Array.isArray(statement.Resource) ? statement.Resource : [statement.Resource!]).map((resource) => `\`${symbolic(resource)}\``).join(', ');
        const keys = isObject(statement.Condition) ? Object.values(statement.Condition).flatMap((test) => Object.keys(test as JsonObject)) : [];
        const condition = [...keys.map((key) => `\`${key}\``), when].filter(Boolean).join(', ');
        rows.push(`| ${component} | ${actions} | ${resources} | ${condition} |`);
        component = '';
      }
    }
  }
  return rows.join('\n');
}

describe('README', () => {
  it('its IAM table is the one the template grants', () => {
    const readme = readFileSync('README.md', 'utf8');
    const section = /<!-- iam-table:start -->\n([\s\S]*?)\n<!-- iam-table:end -->/.exec(readme)?.[1];
    expect(section, `README.md needs, between <!-- iam-table:start --> and <!-- iam-table:end -->:\n${iamTable()}`).toBe(iamTable());
  });
});
