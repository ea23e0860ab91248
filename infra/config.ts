/**
 * The cluster description the infra CLI reads (a JSON file, e.g. infra/cluster.example.json),
 * validated once. Secrets are never in it: the bind password comes from an environment variable or
 * a file named here.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../api/errors.ts';

const ldapSchema = z
  .object({
    /** EMR accepts only ldaps:// (documented rule); the doctor checks the same URL. */
    url: z.string().regex(/^ldaps:\/\/[^/?#]+\/?$/, 'must be ldaps://host[:port]: EMR LDAP integration requires LDAPS'),
    serverType: z.enum(['OpenLDAP', 'ActiveDirectory']),
    /** Required for Active Directory: the domain EMR builds user principal names with. */
    adDomain: z.string().min(1).optional(),
    bindDn: z.string().min(3),
    bindPasswordEnv: z.string().min(1).optional(),
    bindPasswordFile: z.string().min(1).optional(),
    caFile: z.string().min(1),
    userSearchBase: z.string().min(3),
    groupSearchBase: z.string().min(3),
    /** Who may authenticate to the cluster; EMR rejects an empty filter. */
    accessFilter: z.string().regex(/^\(.*\)$/, 'must be an LDAP filter in parentheses, e.g. (objectClass=posixAccount)'),
    enableSshLogin: z.boolean().default(false),
  })
  .strict()
  .refine((l) => (l.bindPasswordEnv === undefined) !== (l.bindPasswordFile === undefined), { message: 'set exactly one of bindPasswordEnv, bindPasswordFile', path: ['bindPasswordEnv'] })
  .refine((l) => l.serverType !== 'ActiveDirectory' || l.adDomain !== undefined, { message: 'required for ActiveDirectory', path: ['adDomain'] });

/** EMR needs a key ARN (not a bare id) for local-disk encryption; an alias ARN is accepted too. */
const kmsKeyArn = z
  .string()
  .regex(/^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)\/[A-Za-z0-9/_-]+$/, 'must be a KMS key ARN: arn:aws:kms:<region>:<account>:key/<id> (or …:alias/<name>)');

/**
 * The cluster's data encryption, on by default: a cluster of this platform holds personal data. At rest, the
 * local disks (LUKS) and, with ebs, the EBS volumes are encrypted with the KMS key, and what EMRFS writes to S3
 * with SSE-KMS (or SSE-S3); in transit, TLS between the applications with the certificates of a PEM zip in S3.
 * Turning at-rest encryption off takes an explicit "enabled": false; in-transit cannot be off here, because
 * EMR's LDAP integration requires it.
 */
const encryptionSchema = z
  .object({
    atRest: z
      .object({
        enabled: z.boolean().default(true),
        kmsKeyArn: kmsKeyArn.optional(),
        s3: z.enum(['SSE-KMS', 'SSE-S3']).default('SSE-KMS'),
        ebs: z.boolean().default(true),
      })
      .strict()
      .refine((atRest) => !atRest.enabled || atRest.kmsKeyArn !== undefined, {
        message: 'required while at-rest encryption is on (the default): the key for local disks, EBS volumes and SSE-KMS in S3; or set "enabled": false',
        path: ['kmsKeyArn'],
      }),
    inTransit: z
      .object({
        enabled: z.boolean().default(true),
        /** A zip of PEM files (privateKey.pem, certificateChain.pem, trustedCertificates.pem) for EMR's TLS. */
        certificatesS3Object: z.string().regex(/^s3:\/\/[^/]+\/.+\.zip$/, 'must be an s3:// zip object of PEM files: s3://bucket/path/certs.zip'),
      })
      .strict()
      .refine((inTransit) => inTransit.enabled, { message: 'cannot be false: EMR LDAP integration requires in-transit encryption', path: ['enabled'] }),
  })
  .strict();

export const clusterConfigSchema = z
  .object({
    region: z.string().min(1),
    name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/),
    /** EMR's native LDAP integration needs release 6.12.0 or later. */
    releaseLabel: z.string().regex(/^emr-\d+\.\d+\.\d+$/).refine(atLeast6_12, 'EMR LDAP integration needs emr-6.12.0 or later'),
    /** KMS key that encrypts the two LDAP secrets; without it, `up` finds or creates alias/<name>-ldap-secrets. */
    kmsKeyId: z.string().min(1).optional(),
    ldap: ldapSchema,
    encryption: encryptionSchema,
    instances: z
      .object({
        instanceType: z.string().min(1).default('m6i.xlarge'),
        count: z.number().int().min(1).max(100).default(3),
        subnetId: z.string().min(1).optional(),
        keyName: z.string().min(1).optional(),
      })
      .strict(),
    serviceRole: z.string().min(1).default('EMR_DefaultRole'),
    jobFlowRole: z.string().min(1).default('EMR_EC2_DefaultRole'),
    logUri: z.string().regex(/^s3:\/\//).optional(),
    /**
     * Scripts EMR runs on every node before its applications start: infra/emr/bootstrap/python-dependencies.sh
     * installs what the Spark jobs import besides their own packages (those come with each step's --py-files).
     */
    bootstrapActions: z
      .array(
        z
          .object({
            name: z.string().min(1).max(256),
            path: z.string().regex(/^s3:\/\/[^/]+\/.+$/, 'must be an s3:// object: s3://bucket/path/script.sh'),
            args: z.array(z.string()).default([]),
          })
          .strict(),
      )
      .default([]),
  })
  .strict();

export type ClusterConfig = z.infer<typeof clusterConfigSchema>;
export type LdapSettings = ClusterConfig['ldap'];

function atLeast6_12(label: string): boolean {
  const [major = 0, minor = 0] = label.slice(4).split('.').map(Number);
  return major > 6 || (major === 6 && minor >= 12);
}

export function parseClusterConfig(json: unknown, where: string): ClusterConfig {
  if (typeof json === 'object' && json !== null && 'inTransitCertificatesS3Object' in json) {
    throw new ConfigError(`${where}: inTransitCertificatesS3Object: moved to encryption.inTransit.certificatesS3Object (see infra/cluster.example.json)`);
  }
  const parsed = clusterConfigSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`${where}: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data;
}

export function readClusterConfig(path: string): ClusterConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
    throw new ConfigError(
      code === 'ENOENT'
        ? `${path}: no such file (start from infra/cluster.example.json: cp infra/cluster.example.json ${path})`
        : `${path}: cannot read the file${code === 'EACCES' ? ' (permission denied)' : code === 'EISDIR' ? ' (it is a folder)' : ''}`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ConfigError(`${path}: not valid JSON`);
  }
  return parseClusterConfig(json, path);
}

/** The bind password from where the config says, never from the config itself. */
export function bindPassword(ldap: LdapSettings, environment: NodeJS.ProcessEnv = process.env): string {
  if (ldap.bindPasswordEnv) {
    const value = environment[ldap.bindPasswordEnv];
    if (!value) throw new ConfigError(`ldap.bindPasswordEnv: the environment variable ${ldap.bindPasswordEnv} is not set`);
    return value;
  }
  try {
    return readFileSync(ldap.bindPasswordFile!, 'utf8').trim();
  } catch {
    throw new ConfigError(`ldap.bindPasswordFile: cannot read ${ldap.bindPasswordFile}`);
  }
}
