/**
 * Provisioning the LDAP-secured EMR cluster, against moto's EMR, Secrets Manager and KMS over HTTP.
 * moto records clusters and security configurations but never boots a cluster or validates the
 * security configuration's contents: these tests check the requests we send (secrets, the security
 * configuration document, RunJobFlow) and the CLI's behaviour, not EMR's reaction to them.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DescribeClusterCommand, DescribeSecurityConfigurationCommand, EMRClient, ListBootstrapActionsCommand } from '@aws-sdk/client-emr';
import { DescribeSecretCommand, GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseClusterConfig } from '../../infra/config.ts';
import { startMoto, TEST_REGION, type Moto } from '../support/moto.ts';

const run = promisify(execFile);
const work = mkdtempSync(join(tmpdir(), 'infra-'));
const BIND_PASSWORD = 'emr-bind-SENTINEL-7f3a';
const CA_PEM = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n';
const AT_REST_KEY = 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
let moto: Moto;
let kmsKeyId: string;

beforeAll(async () => {
  moto = await startMoto();
  kmsKeyId = await moto.createKmsKey();
  writeFileSync(join(work, 'ca.pem'), CA_PEM);
});
afterAll(async () => {
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- undefined when beforeAll failed
  await moto?.stop();
  rmSync(work, { recursive: true, force: true });
});

function clusterConfig(overrides: Record<string, unknown> = {}, ldap: Record<string, unknown> = {}) {
  return {
    region: TEST_REGION,
    name: 'analytics',
    releaseLabel: 'emr-7.5.0',
    kmsKeyId,
    ldap: {
      url: 'ldaps://ldap.corp.example.com:636',
      serverType: 'OpenLDAP',
      bindDn: 'cn=emr-bind,ou=services,dc=corp,dc=example,dc=com',
      bindPasswordEnv: 'LDAP_BIND_PASSWORD',
      caFile: join(work, 'ca.pem'),
      userSearchBase: 'ou=people,dc=corp,dc=example,dc=com',
      groupSearchBase: 'ou=groups,dc=corp,dc=example,dc=com',
      accessFilter: '(memberOf=cn=analytics-users,ou=groups,dc=corp,dc=example,dc=com)',
      ...ldap,
    },
    encryption: { atRest: { kmsKeyArn: AT_REST_KEY }, inTransit: { certificatesS3Object: 's3://config/certs.zip' } },
    instances: { instanceType: 'm6i.xlarge', count: 3 },
    ...overrides,
  };
}

async function infra(config: unknown, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const file = join(work, `cluster-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(config));
  return infraCli(...args, '--config', file, '--endpoint', moto.endpoint);
}

async function infraCli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run('node_modules/.bin/tsx', ['infra/cli.ts', ...args], { env: { ...process.env, ...moto.env, LDAP_BIND_PASSWORD: BIND_PASSWORD } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

interface Encryption {
  EncryptionConfiguration: Record<string, unknown>;
}

describe('cluster configuration', () => {
  it.each([
    [{}, { url: 'ldap://ldap.corp.example.com' }, 'ldap.url: must be ldaps://'],
    [{}, { accessFilter: '' }, 'ldap.accessFilter'],
    [{}, { serverType: 'ActiveDirectory' }, 'ldap.adDomain: required for ActiveDirectory'],
    [{ releaseLabel: 'emr-6.11.0' }, {}, 'needs emr-6.12.0 or later'],
    [{}, { bindPasswordFile: '/x' }, 'set exactly one of bindPasswordEnv, bindPasswordFile'],
    [{}, { bindPassword: 'inline' }, 'ldap'],
  ])('rejects %o %o', (overrides, ldap, message) => {
    expect(() => parseClusterConfig(clusterConfig(overrides, ldap), 'cluster.json')).toThrow(message);
  });

  it.each([
    [{ atRest: {}, inTransit: { certificatesS3Object: 's3://c/certs.zip' } }, 'encryption.atRest.kmsKeyArn: required while at-rest encryption is on'],
    [{ atRest: { kmsKeyArn: 'alias/emr' }, inTransit: { certificatesS3Object: 's3://c/certs.zip' } }, 'encryption.atRest.kmsKeyArn: must be a KMS key ARN'],
    [{ atRest: { kmsKeyArn: AT_REST_KEY, s3: 'CSE-CUSTOM' }, inTransit: { certificatesS3Object: 's3://c/certs.zip' } }, 'encryption.atRest.s3'],
    [{ atRest: { kmsKeyArn: AT_REST_KEY }, inTransit: { enabled: false, certificatesS3Object: 's3://c/certs.zip' } }, 'encryption.inTransit.enabled: cannot be false'],
    [{ atRest: { kmsKeyArn: AT_REST_KEY }, inTransit: { certificatesS3Object: 'https://c/certs.zip' } }, 'encryption.inTransit.certificatesS3Object: must be an s3:// zip'],
    [{ atRest: { kmsKeyArn: AT_REST_KEY } }, 'encryption.inTransit'],
    [undefined, 'encryption'],
  ])('refuses encryption settings %o, naming the key', (encryption, message) => {
    expect(() => parseClusterConfig(clusterConfig({ encryption }), 'cluster.json')).toThrow(`cluster.json: ${message}`);
  });

  it('names the key that moved when a config still has inTransitCertificatesS3Object', () => {
    expect(() => parseClusterConfig({ ...clusterConfig(), inTransitCertificatesS3Object: 's3://c/certs.zip' }, 'cluster.json')).toThrow(
      'inTransitCertificatesS3Object: moved to encryption.inTransit.certificatesS3Object',
    );
  });

  it('reads infra/cluster.example.json as it ships, with encryption at rest and in transit on', () => {
    const example = parseClusterConfig(JSON.parse(readFileSync('infra/cluster.example.json', 'utf8')), 'infra/cluster.example.json');
    expect(example.encryption.atRest).toMatchObject({ enabled: true, s3: 'SSE-KMS', ebs: true });
    expect(example.encryption.inTransit.enabled).toBe(true);
  });

  it('the bootstrap script installs exactly the packages\' third-party dependencies, with their version bounds', () => {
    // The packages travel with --py-files; what they import besides pyspark must be on every node.
    const declared = (pyproject: string): string[] => {
      const list = /^dependencies = \[([\s\S]*?)\]/m.exec(readFileSync(pyproject, 'utf8'))![1]!;
      return [...list.matchAll(/"([^"]+)"/g)].map((match) => match[1]!).filter((requirement) => !/^(spark-udfs|stream-consumer)\b/.test(requirement));
    };
    const script = readFileSync('infra/emr/bootstrap/python-dependencies.sh', 'utf8');
    const installed = [.../^requirements=\(([\s\S]*?)\n\)/m.exec(script)![1]!.matchAll(/'([^']+)'/g)].map((match) => match[1]!);
    expect(installed.sort()).toEqual([...new Set([...declared('spark-udfs/pyproject.toml'), ...declared('stream-consumer/pyproject.toml')])].sort());
    expect(parseClusterConfig(JSON.parse(readFileSync('infra/cluster.example.json', 'utf8')), 'infra/cluster.example.json').bootstrapActions.map((action) => action.path)).toEqual(['s3://example-artifacts-bucket/spark/bootstrap/python-dependencies.sh']);
  });

  it('accepts emr-6.12.0 and Active Directory with its domain', () => {
    const config = parseClusterConfig(clusterConfig({ releaseLabel: 'emr-6.12.0' }, { serverType: 'ActiveDirectory', adDomain: 'corp.example.com' }), 'c.json');
    expect(config.ldap.adDomain).toBe('corp.example.com');
  });
});

describe('infra up, endpoints, terminate (moto)', () => {
  const emr = () => new EMRClient({ region: TEST_REGION, endpoint: moto.endpoint });
  const secrets = () => new SecretsManagerClient({ region: TEST_REGION, endpoint: moto.endpoint });

  it('creates the two KMS-encrypted secrets, the LDAP security configuration and the cluster', async () => {
    const result = await infra(clusterConfig(), 'up');
    expect(result.stderr).not.toMatch(/Error/);
    expect(result.code).toBe(0);
    expect(result.stdout).not.toContain(BIND_PASSWORD);
    const out = JSON.parse(result.stdout) as { clusterId: string; securityConfiguration: string; secrets: { bindCredentialsArn: string; certificateArn: string }; instanceProfileNeeds: { Resource: string[] } };

    const bind = await secrets().send(new GetSecretValueCommand({ SecretId: out.secrets.bindCredentialsArn }));
    expect(JSON.parse(bind.SecretString!)).toEqual({ 'cn=emr-bind,ou=services,dc=corp,dc=example,dc=com': BIND_PASSWORD });
    expect((await secrets().send(new GetSecretValueCommand({ SecretId: out.secrets.certificateArn }))).SecretString).toBe(CA_PEM);
    for (const arn of Object.values(out.secrets)) expect((await secrets().send(new DescribeSecretCommand({ SecretId: arn }))).KmsKeyId).toBe(kmsKeyId);
    expect(out.instanceProfileNeeds.Resource).toEqual([out.secrets.bindCredentialsArn, out.secrets.certificateArn]);

    const stored = await emr().send(new DescribeSecurityConfigurationCommand({ Name: out.securityConfiguration }));
    expect(JSON.parse(stored.SecurityConfiguration!)).toEqual({
      EncryptionConfiguration: {
        EnableInTransitEncryption: true,
        EnableAtRestEncryption: true,
        InTransitEncryptionConfiguration: { TLSCertificateConfiguration: { CertificateProviderType: 'PEM', S3Object: 's3://config/certs.zip' } },
        AtRestEncryptionConfiguration: {
          S3EncryptionConfiguration: { EncryptionMode: 'SSE-KMS', AwsKmsKey: AT_REST_KEY },
          LocalDiskEncryptionConfiguration: { EncryptionKeyProviderType: 'AwsKms', AwsKmsKey: AT_REST_KEY, EnableEbsEncryption: true },
        },
      },
      AuthenticationConfiguration: {
        LDAPConfiguration: {
          EnableLDAPAuthentication: true,
          LDAPServerURL: 'ldaps://ldap.corp.example.com:636',
          BindCertificateARN: out.secrets.certificateArn,
          BindCredentialsARN: out.secrets.bindCredentialsArn,
          LDAPAccessFilter: '(memberOf=cn=analytics-users,ou=groups,dc=corp,dc=example,dc=com)',
          LDAPUserSearchBase: 'ou=people,dc=corp,dc=example,dc=com',
          LDAPGroupSearchBase: 'ou=groups,dc=corp,dc=example,dc=com',
          EnableSSHLogin: false,
          LDAPServerType: 'OpenLDAP',
        },
      },
    });

    const { Cluster } = await emr().send(new DescribeClusterCommand({ ClusterId: out.clusterId }));
    expect(Cluster?.ReleaseLabel).toBe('emr-7.5.0');
    expect(Cluster?.SecurityConfiguration).toBe(out.securityConfiguration);
    expect(Cluster?.Applications?.map((a) => a.Name).sort()).toEqual(['Hive', 'Hue', 'Livy', 'Spark', 'Trino']);
    expect((await emr().send(new ListBootstrapActionsCommand({ ClusterId: out.clusterId }))).BootstrapActions).toEqual([]);

    const endpoints = await infra(clusterConfig(), 'endpoints', '--cluster', out.clusterId);
    const listed = JSON.parse(endpoints.stdout) as { endpoints: { application: string; address: string }[] };
    if (Cluster?.MasterPublicDnsName) {
      expect(listed.endpoints.map((e) => e.application)).toEqual(['HiveServer2 (JDBC)', 'Trino', 'Livy', 'Hue']);
      expect(listed.endpoints[0]!.address).toBe(`jdbc:hive2://${Cluster.MasterPublicDnsName}:10000/default;ssl=true`);
    }

    expect((await infra(clusterConfig(), 'terminate', '--cluster', out.clusterId)).code).toBe(0);
    const after = await emr().send(new DescribeClusterCommand({ ClusterId: out.clusterId }));
    expect(['TERMINATING', 'TERMINATED']).toContain(after.Cluster?.Status?.State);
  });

  it('runs the configured bootstrap actions on every node (RunJobFlow BootstrapActions)', async () => {
    const bootstrapActions = [{ name: 'python-dependencies', path: 's3://artifacts/spark/bootstrap/python-dependencies.sh', args: ['pyarrow==17.0.0'] }];
    const result = await infra(clusterConfig({ name: 'with-bootstrap', bootstrapActions }), 'up');
    expect(result.code).toBe(0);
    const { clusterId } = JSON.parse(result.stdout) as { clusterId: string };
    const listed = await emr().send(new ListBootstrapActionsCommand({ ClusterId: clusterId }));
    expect(listed.BootstrapActions?.map((action) => [action.Name, action.ScriptPath, action.Args])).toEqual([['python-dependencies', 's3://artifacts/spark/bootstrap/python-dependencies.sh', ['pyarrow==17.0.0']]]);
    expect((await infra(clusterConfig({ name: 'with-bootstrap' }), 'terminate', '--cluster', clusterId)).code).toBe(0);
  });

  it('reuses an identical security configuration and refuses to silently change one', async () => {
    expect((await infra(clusterConfig({ name: 'twice' }), 'up')).code).toBe(0);
    expect((await infra(clusterConfig({ name: 'twice' }), 'up')).code).toBe(0);
    const changed = await infra(clusterConfig({ name: 'twice' }, { accessFilter: '(objectClass=posixAccount)' }), 'up');
    expect(changed.code).toBe(2);
    expect(changed.stderr).toContain('security configurations cannot be changed');
  });

  it('writes Active Directory settings in their sub-block', async () => {
    const result = await infra(clusterConfig({ name: 'ad' }, { serverType: 'ActiveDirectory', adDomain: 'corp.example.com' }), 'render');
    const document = JSON.parse(result.stdout) as { AuthenticationConfiguration: { LDAPConfiguration: Record<string, unknown> } };
    expect(document.AuthenticationConfiguration.LDAPConfiguration).toMatchObject({ LDAPServerType: 'ActiveDirectory', ActiveDirectoryConfigurations: { ADDomain: 'corp.example.com' } });
  });

  it('creates a KMS key for the secrets under an alias when none is configured, and reuses it', async () => {
    const { kmsKeyId: _configured, ...withoutKey } = clusterConfig({ name: 'own-key' });
    const first = JSON.parse((await infra(withoutKey, 'up')).stdout) as { secrets: { bindCredentialsArn: string } };
    const second = JSON.parse((await infra(withoutKey, 'up')).stdout) as { secrets: { bindCredentialsArn: string } };
    const { KMSClient, DescribeKeyCommand } = await import('@aws-sdk/client-kms');
    const key = await new KMSClient({ region: TEST_REGION, endpoint: moto.endpoint }).send(new DescribeKeyCommand({ KeyId: 'alias/own-key-ldap-secrets' }));
    for (const out of [first, second]) {
      expect((await secrets().send(new DescribeSecretCommand({ SecretId: out.secrets.bindCredentialsArn }))).KmsKeyId).toBe(key.KeyMetadata!.Arn);
    }
  });

  it('renders at-rest encryption as configured: SSE-S3 without EBS, or off when turned off explicitly', async () => {
    const sseS3 = JSON.parse((await infra(clusterConfig({ encryption: { atRest: { kmsKeyArn: AT_REST_KEY, s3: 'SSE-S3', ebs: false }, inTransit: { certificatesS3Object: 's3://c/certs.zip' } } }), 'render')).stdout) as Encryption;
    expect(sseS3.EncryptionConfiguration).toMatchObject({
      EnableAtRestEncryption: true,
      AtRestEncryptionConfiguration: {
        S3EncryptionConfiguration: { EncryptionMode: 'SSE-S3' },
        LocalDiskEncryptionConfiguration: { EncryptionKeyProviderType: 'AwsKms', AwsKmsKey: AT_REST_KEY, EnableEbsEncryption: false },
      },
    });
    const off = JSON.parse((await infra(clusterConfig({ encryption: { atRest: { enabled: false }, inTransit: { certificatesS3Object: 's3://c/certs.zip' } } }), 'render')).stdout) as Encryption;
    expect(off.EncryptionConfiguration).toEqual({
      EnableInTransitEncryption: true,
      EnableAtRestEncryption: false,
      InTransitEncryptionConfiguration: { TLSCertificateConfiguration: { CertificateProviderType: 'PEM', S3Object: 's3://c/certs.zip' } },
    });
  });

  it('exits 2 with usage for a wrong command, an unknown option or no command', async () => {
    for (const args of [['launch-everything'], ['render', '--shards', '2'], []]) {
      const result = await infra(clusterConfig(), ...args);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain('usage: npm run infra');
    }
  });

  it('prints its usage with examples for --help and exits 0, with or without a command', async () => {
    for (const args of [['--help'], ['up', '-h']]) {
      const result = await infraCli(...args);
      expect(result.code).toBe(0);
      expect(result.stdout).toContain('usage: npm run infra -- <command> --config FILE');
      expect(result.stdout).toContain('examples:');
    }
  });

  it('says a config file that does not exist is missing (not unreadable JSON) and exits 2', async () => {
    const missing = await infraCli('render', '--config', join(work, 'cluster.json'));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`${join(work, 'cluster.json')}: no such file (start from infra/cluster.example.json`);
    writeFileSync(join(work, 'broken.json'), '{"region": ');
    const broken = await infraCli('render', '--config', join(work, 'broken.json'));
    expect(broken.code).toBe(2);
    expect(broken.stderr).toContain('broken.json: not valid JSON');
  });
});
