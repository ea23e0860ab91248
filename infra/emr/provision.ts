/**
 * Provisions an EMR cluster with native LDAP authentication:
 *   1. two Secrets Manager secrets encrypted with a KMS key (the configured one, or one created under
 *      alias/<name>-ldap-secrets): the bind credentials in the shape
 *      EMR reads ({"<bind DN>": "<password>"}) and the CA certificate (PEM) that signed the LDAP
 *      server's certificate;
 *   2. an EMR security configuration with LDAP authentication and in-transit encryption;
 *   3. RunJobFlow with Spark, Livy, Hive, Hue and Trino and that security configuration;
 * then reports the endpoints and can terminate the cluster.
 */
import {
  CreateSecurityConfigurationCommand,
  DescribeClusterCommand,
  DescribeSecurityConfigurationCommand,
  EMRClient,
  RunJobFlowCommand,
  TerminateJobFlowsCommand,
} from '@aws-sdk/client-emr';
import { CreateAliasCommand, CreateKeyCommand, DescribeKeyCommand, KMSClient, NotFoundException } from '@aws-sdk/client-kms';
import { CreateSecretCommand, DescribeSecretCommand, PutSecretValueCommand, ResourceNotFoundException, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ConfigError } from '../../api/errors.ts';
import type { ClusterConfig } from '../config.ts';
import { ldapSecurityConfiguration, type LdapSecretArns } from './securityConfiguration.ts';

export const APPLICATIONS = ['Spark', 'Livy', 'Hive', 'Hue', 'Trino'] as const;

export interface Endpoint {
  readonly application: string;
  readonly address: string;
}

export class EmrLdapProvisioner {
  private readonly secrets: SecretsManagerClient;
  private readonly emr: EMRClient;
  private readonly kms: KMSClient;

  constructor(
    private readonly config: ClusterConfig,
    endpoint?: string,
  ) {
    const clientConfig = { region: config.region, ...(endpoint ? { endpoint } : {}), maxAttempts: 5 };
    this.secrets = new SecretsManagerClient(clientConfig);
    this.emr = new EMRClient(clientConfig);
    this.kms = new KMSClient(clientConfig);
  }

  /** The KMS key for the secrets: the configured one, or alias/<name>-ldap-secrets, created on first use. */
  async secretsKey(): Promise<string> {
    if (this.config.kmsKeyId) return this.config.kmsKeyId;
    const alias = `alias/${this.config.name}-ldap-secrets`;
    try {
      const { KeyMetadata } = await this.kms.send(new DescribeKeyCommand({ KeyId: alias }));
      return KeyMetadata!.Arn!;
    } catch (error) {
      if (!(error instanceof NotFoundException)) throw error;
    }
    const { KeyMetadata } = await this.kms.send(
      new CreateKeyCommand({ Description: `Encrypts the LDAP secrets of EMR cluster ${this.config.name}`, KeyUsage: 'ENCRYPT_DECRYPT', Tags: [{ TagKey: 'platform', TagValue: 'pseudonymization' }] }),
    );
    await this.kms.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: KeyMetadata!.KeyId! }));
    return KeyMetadata!.Arn!;
  }

  get securityConfigurationName(): string {
    return `${this.config.name}-ldap`;
  }

  /** Creates (or updates) both secrets and returns their ARNs. */
  async putSecrets(bindPassword: string, caCertificatePem: string): Promise<LdapSecretArns> {
    const kmsKeyId = await this.secretsKey();
    const bindCredentialsArn = await this.putSecret(`${this.config.name}/ldap-bind-credentials`, JSON.stringify({ [this.config.ldap.bindDn]: bindPassword }), 'LDAP bind credentials for EMR (BindCredentialsARN)', kmsKeyId);
    const certificateArn = await this.putSecret(`${this.config.name}/ldap-certificate`, caCertificatePem, 'CA certificate of the LDAP server for EMR (BindCertificateARN)', kmsKeyId);
    return { bindCredentialsArn, certificateArn };
  }

  /** Creates the security configuration; an identical existing one is reused, a different one is an error (they are immutable). */
  async putSecurityConfiguration(arns: LdapSecretArns): Promise<{ name: string; document: Record<string, unknown> }> {
    const document = ldapSecurityConfiguration(this.config, arns);
    const name = this.securityConfigurationName;
    const existing = await this.emr.send(new DescribeSecurityConfigurationCommand({ Name: name })).catch(() => undefined);
    if (existing?.SecurityConfiguration) {
      if (JSON.stringify(JSON.parse(existing.SecurityConfiguration)) !== JSON.stringify(document)) {
        throw new ConfigError(`the EMR security configuration ${name} exists with other settings; security configurations cannot be changed: delete it or rename the cluster`);
      }
      return { name, document };
    }
    await this.emr.send(new CreateSecurityConfigurationCommand({ Name: name, SecurityConfiguration: JSON.stringify(document) }));
    return { name, document };
  }

  async launch(securityConfigurationName: string): Promise<string> {
    const { instances } = this.config;
    const response = await this.emr.send(
      new RunJobFlowCommand({
        Name: this.config.name,
        ReleaseLabel: this.config.releaseLabel,
        ...(this.config.logUri ? { LogUri: this.config.logUri } : {}),
        Applications: APPLICATIONS.map((Name) => ({ Name })),
        ...(this.config.bootstrapActions.length > 0 ? { BootstrapActions: this.config.bootstrapActions.map((action) => ({ Name: action.name, ScriptBootstrapAction: { Path: action.path, Args: action.args } })) } : {}),
        SecurityConfiguration: securityConfigurationName,
        ServiceRole: this.config.serviceRole,
        JobFlowRole: this.config.jobFlowRole,
        VisibleToAllUsers: true,
        Tags: [{ Key: 'platform', Value: 'pseudonymization' }],
        Instances: {
          KeepJobFlowAliveWhenNoSteps: true,
          ...(instances.subnetId ? { Ec2SubnetId: instances.subnetId } : {}),
          ...(instances.keyName ? { Ec2KeyName: instances.keyName } : {}),
          InstanceGroups: [
            { Name: 'primary', InstanceRole: 'MASTER', InstanceType: instances.instanceType, InstanceCount: 1 },
            ...(instances.count > 1 ? [{ Name: 'core', InstanceRole: 'CORE' as const, InstanceType: instances.instanceType, InstanceCount: instances.count - 1 }] : []),
          ],
        },
      }),
    );
    if (!response.JobFlowId) throw new ConfigError('RunJobFlow returned no cluster id');
    return response.JobFlowId;
  }

  /**
   * Where people reach the applications with their directory credentials, on the primary node
   * (EMR's default ports; with in-transit encryption the web endpoints are HTTPS).
   */
  async endpoints(clusterId: string): Promise<{ state: string; endpoints: Endpoint[] }> {
    const { Cluster } = await this.emr.send(new DescribeClusterCommand({ ClusterId: clusterId }));
    const host = Cluster?.MasterPublicDnsName;
    const state = Cluster?.Status?.State ?? 'UNKNOWN';
    if (!host) return { state, endpoints: [] };
    const endpoints: Endpoint[] = [
      { application: 'HiveServer2 (JDBC)', address: `jdbc:hive2://${host}:10000/default;ssl=true` },
      { application: 'Trino', address: `https://${host}:8446` },
      { application: 'Livy', address: `https://${host}:8998` },
      { application: 'Hue', address: `https://${host}:8888` },
    ];
    if (this.config.ldap.enableSshLogin) endpoints.push({ application: 'SSH (LDAP password)', address: `ssh <user>@${host}` });
    return { state, endpoints };
  }

  async terminate(clusterId: string): Promise<void> {
    await this.emr.send(new TerminateJobFlowsCommand({ JobFlowIds: [clusterId] }));
  }

  /** The statement the cluster's EC2 instance profile needs to read the two secrets. */
  instanceProfileStatement(arns: LdapSecretArns): Record<string, unknown> {
    return { Sid: 'AllowLdapSecretsRetrieval', Effect: 'Allow', Action: 'secretsmanager:GetSecretValue', Resource: [arns.bindCredentialsArn, arns.certificateArn] };
  }

  private async putSecret(name: string, value: string, description: string, kmsKeyId: string): Promise<string> {
    try {
      await this.secrets.send(new PutSecretValueCommand({ SecretId: name, SecretString: value }));
    } catch (error) {
      if (!(error instanceof ResourceNotFoundException)) throw error;
      const created = await this.secrets.send(new CreateSecretCommand({ Name: name, SecretString: value, KmsKeyId: kmsKeyId, Description: description, Tags: [{ Key: 'platform', Value: 'pseudonymization' }] }));
      return created.ARN!;
    }
    const described = await this.secrets.send(new DescribeSecretCommand({ SecretId: name }));
    return described.ARN!;
  }
}
