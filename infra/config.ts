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

export const clusterConfigSchema = z
  .object({
    region: z.string().min(1),
    name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/),
    /** EMR's native LDAP integration needs release 6.12.0 or later. */
    releaseLabel: z.string().regex(/^emr-\d+\.\d+\.\d+$/).refine(atLeast6_12, 'EMR LDAP integration needs emr-6.12.0 or later'),
    /** KMS key that encrypts the two LDAP secrets; without it, `up` finds or creates alias/<name>-ldap-secrets. */
    kmsKeyId: z.string().min(1).optional(),
    ldap: ldapSchema,
    /** A zip of PEM files for EMR in-transit encryption, which the LDAP integration requires. */
    inTransitCertificatesS3Object: z.string().regex(/^s3:\/\//, 'must be an s3:// object'),
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
  })
  .strict();

export type ClusterConfig = z.infer<typeof clusterConfigSchema>;
export type LdapSettings = ClusterConfig['ldap'];

function atLeast6_12(label: string): boolean {
  const [major = 0, minor = 0] = label.slice(4).split('.').map(Number);
  return major > 6 || (major === 6 && minor >= 12);
}

export function parseClusterConfig(json: unknown, where: string): ClusterConfig {
  const parsed = clusterConfigSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`${where}: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data;
}

export function readClusterConfig(path: string): ClusterConfig {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    throw new ConfigError(`${path}: cannot read it as JSON`);
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
