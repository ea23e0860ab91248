/**
 * The one place that reads the environment. Parsed and validated once at start-up into a typed
 * Config; a bad value fails fast with a message that names the variable (never its value, which
 * could be a secret). Every default is the embedded, no-AWS setting.
 */
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { z } from 'zod';
import { ROLES, type Role } from '../auth/roles.ts';
import { ConfigError } from '../errors.ts';

const MiB = 1024 * 1024;

const integer = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

const environmentSchema = z.object({
  PSEUDO_HOST: z.string().min(1).default('127.0.0.1'),
  PSEUDO_PORT: integer(0, 65535).default(8080),
  PSEUDO_WORKERS: integer(1, 64).default(1),
  PSEUDO_DATA_DIR: z.string().min(1).default('data'),
  PSEUDO_POLICY_FILE: z.string().min(1).default('config/policies.json'),
  PSEUDO_COMPAT_CONTEXT: z.string().min(1).default('vin'),
  PSEUDO_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  // CloudWatch Embedded Metric Format on Lambda: the namespace and the service dimension of every metric.
  PSEUDO_METRICS_NAMESPACE: z.string().regex(/^[A-Za-z0-9_./#:-]{1,255}$/, 'must be 1-255 of A-Z a-z 0-9 _ . / # : -').default('Pseudonymization'),
  PSEUDO_METRICS_SERVICE: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 of A-Z a-z 0-9 _ . -').default('pseudonymization-api'),

  PSEUDO_KEYRING: z.enum(['local', 'aws']).default('local'),
  PSEUDO_KEYRING_NAME: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 of A-Z a-z 0-9 _ . -').default('default'),
  PSEUDO_KEYRING_FILE: z.string().min(1).optional(),
  PSEUDO_KEYRING_SECRET_ID: z.string().min(1).optional(),
  PSEUDO_KMS_KEY_ID: z.string().min(1).optional(),
  PSEUDO_KEYRING_REFRESH_SECONDS: integer(5, 86_400).default(300),

  PSEUDO_API_KEYS: z.enum(['local', 'aws']).default('local'),
  PSEUDO_API_KEYS_FILE: z.string().min(1).optional(),
  PSEUDO_API_KEYS_SECRET_ID: z.string().min(1).optional(),
  PSEUDO_API_KEYS_REFRESH_SECONDS: integer(1, 3600).default(30),

  PSEUDO_MAX_BODY_BYTES: integer(1024, 6 * MiB).default(6 * MiB),
  PSEUDO_MAX_VALUES: integer(1, 1_000_000).default(10_000),
  PSEUDO_MAX_VALUE_BYTES: integer(1, 65_536).default(1024),
  PSEUDO_CACHE_ENTRIES: integer(0, 50_000_000).default(200_000),

  PSEUDO_LDAP_URL: z.string().regex(/^ldaps?:\/\/[^/?#]+\/?$/, 'must be ldaps://host[:port] or ldap://host[:port]').optional(),
  PSEUDO_LDAP_START_TLS: z.enum(['true', 'false']).default('false'),
  PSEUDO_LDAP_ALLOW_PLAIN: z.enum(['true', 'false']).default('false'),
  PSEUDO_LDAP_CA_FILE: z.string().min(1).optional(),
  PSEUDO_LDAP_BIND_DN: z.string().min(1).optional(),
  PSEUDO_LDAP_BIND_PASSWORD: z.string().min(1).optional(),
  PSEUDO_LDAP_BIND_PASSWORD_FILE: z.string().min(1).optional(),
  PSEUDO_LDAP_BIND_PASSWORD_SECRET_ID: z.string().min(1).optional(),
  PSEUDO_LDAP_USER_BASE: z.string().min(1).optional(),
  /** The entry's attribute that names the person (session subject, audit actor, throttle): uid, or sAMAccountName on Active Directory. */
  PSEUDO_LDAP_USERNAME_ATTRIBUTE: z.string().regex(/^[A-Za-z][A-Za-z0-9-]{0,63}$/, 'must be an attribute name').default('uid'),
  PSEUDO_LDAP_USER_FILTER: z.string().includes('{username}', { message: 'must contain {username}' }).default('(&(objectClass=person)(uid={username}))'),
  PSEUDO_LDAP_GROUPS: z.enum(['memberOf', 'ad-nested']).default('memberOf'),
  PSEUDO_LDAP_GROUP_BASE: z.string().min(1).optional(),
  PSEUDO_LDAP_ROLE_MAP: z.string().min(2).optional(),
  PSEUDO_LDAP_TIMEOUT_MS: integer(100, 60_000).default(5000),
  PSEUDO_SESSION_TTL_SECONDS: integer(60, 43_200).default(900),
  PSEUDO_LOGIN_MAX_FAILURES: integer(1, 1000).default(5),
  PSEUDO_LOGIN_LOCK_SECONDS: integer(1, 86_400).default(300),
  /** Which hops may state the client's address in X-Forwarded-For: a hop count, or IPs/CIDRs; unset, the peer's address (api/http/clientAddress.ts). */
  PSEUDO_TRUSTED_PROXIES: z.string().min(1).optional(),

  PSEUDO_ERASURE_REGISTRY_FILE: z.string().min(1).optional(),
  PSEUDO_ERASURE_LEDGER: z.enum(['sqlite', 'dynamodb']).default('sqlite'),
  PSEUDO_ERASURE_LEDGER_FILE: z.string().min(1).optional(),
  PSEUDO_ERASURE_LEDGER_TABLE: z.string().regex(/^[A-Za-z0-9_.-]{3,255}$/, 'must be a DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -)').optional(),
  PSEUDO_ERASURE_RUNNER: z.enum(['local', 'emr']).default('local'),
  PSEUDO_ERASURE_PYTHON: z.string().min(1).default('.venv/bin/python'),
  PSEUDO_ERASURE_SPARK_MASTER: z.string().min(1).default('local[2]'),
  /** The local runner's folder of the Iceberg runtime and SQLite JDBC jars, passed to its job as SPARK_UDFS_JARS. */
  PSEUDO_ERASURE_SPARK_JARS: z.string().min(1).default('.cache/jars'),
  PSEUDO_ERASURE_MAX_ATTEMPTS: integer(1, 20).default(3),
  PSEUDO_ERASURE_POLL_SECONDS: integer(1, 3600).default(5),
  PSEUDO_ERASURE_ORPHAN_GRACE_SECONDS: integer(0, 604_800).default(3600),
  PSEUDO_ERASURE_RETRY_SECONDS: integer(0, 86_400).default(900),
  /** Table maintenance (api/maintenance/schedule.ts) every this many hours, by the process running the erasure worker; 0: off. */
  PSEUDO_MAINTENANCE_INTERVAL_HOURS: integer(0, 8760).default(0),
  PSEUDO_ERASURE_CACHE_SECONDS: integer(0, 300).default(5),
  PSEUDO_ERASURE_EMR_CLUSTER_ID: z.string().regex(/^j-[A-Z0-9]{1,64}$/, 'must be an EMR cluster id (j-…)').optional(),
  PSEUDO_ERASURE_EMR_JOB_URI: z.string().regex(/^s3:\/\/[^/]+\/.+\.py$/, 'must be s3://bucket/…/job.py').optional(),
  PSEUDO_ERASURE_EMR_WORK_URI: z.string().regex(/^s3:\/\/[^/]+(\/.*)?$/, 'must be s3://bucket[/prefix]').optional(),
  /** The erasure step's --py-files: comma-separated s3://…/*.zip (the spark-udfs zip deploy uploads); empty: the cluster has spark-udfs installed. */
  PSEUDO_ERASURE_EMR_PY_FILES: z.string().regex(/^(s3:\/\/[^/,]+\/[^,]+\.(zip|egg|py)(,s3:\/\/[^/,]+\/[^,]+\.(zip|egg|py))*)?$/, 'must be comma-separated s3://bucket/…/name.zip (or .egg, .py)').optional(),

  AWS_REGION: z.string().min(1).default('eu-west-1'),
  /** A local AWS endpoint (moto in tests); unset in AWS. */
  PSEUDO_AWS_ENDPOINT: z.url().optional(),
});

export type KeyringConfig =
  | { readonly provider: 'local'; readonly name: string; readonly file: string; readonly refreshSeconds: number }
  | {
      readonly provider: 'aws';
      readonly name: string;
      readonly secretId: string;
      readonly kmsKeyId: string;
      readonly region: string;
      readonly endpoint: string | undefined;
      readonly refreshSeconds: number;
    };

export type ApiKeysConfig =
  | { readonly provider: 'local'; readonly file: string; readonly refreshSeconds: number }
  | { readonly provider: 'aws'; readonly secretId: string; readonly region: string; readonly endpoint: string | undefined; readonly refreshSeconds: number };

export type BindPasswordSource =
  | { readonly kind: 'env'; readonly value: string }
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'secret'; readonly secretId: string; readonly region: string; readonly endpoint: string | undefined };

export interface LdapConfig {
  readonly url: string;
  readonly startTls: boolean;
  readonly caFile: string | undefined;
  readonly bindDn: string;
  readonly bindPassword: BindPasswordSource;
  readonly userBase: string;
  /** An RFC 4515 filter with {username} where the escaped user name goes. */
  readonly userFilter: string;
  /** The attribute whose value (as the directory stores it) names the person once found. */
  readonly usernameAttribute: string;
  readonly groups: { readonly mode: 'memberOf' } | { readonly mode: 'ad-nested'; readonly base: string };
  /** Group DN (normalized) -> roles. */
  readonly roleMap: ReadonlyMap<string, readonly Role[]>;
  readonly timeoutMs: number;
}

export type ErasureRunnerConfig =
  | { readonly kind: 'local'; readonly python: string; readonly sparkMaster: string; readonly jars: string; readonly workDir: string }
  | {
      readonly kind: 'emr';
      readonly clusterId: string;
      readonly jobUri: string;
      readonly workUri: string;
      /** The step's --py-files (s3:// zips); empty when the cluster has the package installed. */
      readonly pyFiles: readonly string[];
      readonly region: string;
      readonly endpoint: string | undefined;
    };

/** Where the erasure ledger lives: a SQLite file (one server) or a DynamoDB table (shared by every process and Lambda instance). */
export type ErasureLedgerConfig =
  | { readonly store: 'sqlite'; readonly file: string }
  | { readonly store: 'dynamodb'; readonly table: string; readonly region: string; readonly endpoint: string | undefined };

export interface ErasureConfig {
  /** The table registry (JSON); erasure is off without one. */
  readonly registryFile: string | undefined;
  /** The SQLite ledger's file (also where the audit CLI looks when the store is SQLite). */
  readonly ledgerFile: string;
  /** The SQLite ledger's head record in the data folder (erasure/ledgerHead.ts): a lost or rolled-back ledger is refused at start. */
  readonly ledgerHeadFile: string;
  readonly ledger: ErasureLedgerConfig;
  readonly runner: ErasureRunnerConfig;
  readonly maxAttempts: number;
  readonly pollSeconds: number;
  readonly orphanGraceSeconds: number;
  readonly retrySeconds: number;
  /** The oldest the in-memory set of erased pseudonyms may be when it answers a request (erasure/suppression.ts). */
  readonly cacheSeconds: number;
  /** Table maintenance of the registered tables every this many hours (0: off), on the erasure runner. */
  readonly maintenanceIntervalHours: number;
}

export interface PeopleConfig {
  readonly ldap: LdapConfig | undefined;
  readonly sessionTtlSeconds: number;
  readonly maxFailures: number;
  readonly lockSeconds: number;
}

/** Which peers may tell the client's address in X-Forwarded-For (PSEUDO_TRUSTED_PROXIES). */
export type TrustedProxies =
  | { readonly kind: 'none' }
  | { readonly kind: 'hops'; readonly hops: number }
  /** IPv4/IPv6 addresses and CIDR ranges, checked well-formed. */
  | { readonly kind: 'ranges'; readonly ranges: readonly string[] };

export interface Config {
  readonly host: string;
  readonly port: number;
  readonly workers: number;
  readonly dataDir: string;
  readonly policyFile: string;
  readonly compatContext: string;
  readonly logLevel: z.infer<typeof environmentSchema>['PSEUDO_LOG_LEVEL'];
  /** Where metrics go when they are not scraped (Lambda: CloudWatch EMF): namespace and service dimension. */
  readonly metrics: { readonly namespace: string; readonly service: string };
  readonly keyring: KeyringConfig;
  readonly apiKeys: ApiKeysConfig;
  readonly limits: { readonly maxBodyBytes: number; readonly maxValues: number; readonly maxValueBytes: number };
  readonly cacheEntries: number;
  readonly people: PeopleConfig;
  readonly trustedProxies: TrustedProxies;
  readonly erasure: ErasureConfig;
  /** For AWS calls that belong to no provider above (the registry's Glue check). */
  readonly aws: { readonly region: string; readonly endpoint: string | undefined };
}

export function loadConfig(environment: NodeJS.ProcessEnv = process.env): Config {
  const known = Object.fromEntries(
    Object.keys(environmentSchema.shape)
      .filter((name) => environment[name] !== undefined && environment[name] !== '')
      .map((name) => [name, environment[name]]),
  );
  const parsed = environmentSchema.safeParse(known);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`${issue.path.join('.')}: ${issue.message}`);
  }
  const env = parsed.data;
  const dataDir = resolve(env.PSEUDO_DATA_DIR);
  type Conditional = 'PSEUDO_KEYRING_SECRET_ID' | 'PSEUDO_KMS_KEY_ID' | 'PSEUDO_API_KEYS_SECRET_ID' | 'PSEUDO_ERASURE_EMR_CLUSTER_ID' | 'PSEUDO_ERASURE_EMR_JOB_URI' | 'PSEUDO_ERASURE_EMR_WORK_URI' | 'PSEUDO_ERASURE_LEDGER_TABLE';
  const require = (name: Conditional, because: string): string => {
    const value = env[name];
    if (!value) throw new ConfigError(`${name}: required when ${because}`);
    return value;
  };

  const keyring: KeyringConfig =
    env.PSEUDO_KEYRING === 'local'
      ? { provider: 'local', name: env.PSEUDO_KEYRING_NAME, file: resolve(env.PSEUDO_KEYRING_FILE ?? `${dataDir}/keyring.json`), refreshSeconds: env.PSEUDO_KEYRING_REFRESH_SECONDS }
      : {
          provider: 'aws',
          name: env.PSEUDO_KEYRING_NAME,
          secretId: require('PSEUDO_KEYRING_SECRET_ID', 'PSEUDO_KEYRING=aws'),
          kmsKeyId: require('PSEUDO_KMS_KEY_ID', 'PSEUDO_KEYRING=aws'),
          region: env.AWS_REGION,
          endpoint: env.PSEUDO_AWS_ENDPOINT,
          refreshSeconds: env.PSEUDO_KEYRING_REFRESH_SECONDS,
        };
  const apiKeys: ApiKeysConfig =
    env.PSEUDO_API_KEYS === 'local'
      ? { provider: 'local', file: resolve(env.PSEUDO_API_KEYS_FILE ?? `${dataDir}/api-keys.json`), refreshSeconds: env.PSEUDO_API_KEYS_REFRESH_SECONDS }
      : {
          provider: 'aws',
          secretId: require('PSEUDO_API_KEYS_SECRET_ID', 'PSEUDO_API_KEYS=aws'),
          region: env.AWS_REGION,
          endpoint: env.PSEUDO_AWS_ENDPOINT,
          refreshSeconds: env.PSEUDO_API_KEYS_REFRESH_SECONDS,
        };

  const people: PeopleConfig = {
    ldap: ldapConfig(env),
    sessionTtlSeconds: env.PSEUDO_SESSION_TTL_SECONDS,
    maxFailures: env.PSEUDO_LOGIN_MAX_FAILURES,
    lockSeconds: env.PSEUDO_LOGIN_LOCK_SECONDS,
  };

  const requireEmr = (name: Conditional): string => require(name, 'PSEUDO_ERASURE_RUNNER=emr');
  const ledgerFile = resolve(env.PSEUDO_ERASURE_LEDGER_FILE ?? `${dataDir}/erasure-ledger.db`);
  if (env.PSEUDO_ERASURE_LEDGER === 'dynamodb' && env.PSEUDO_ERASURE_LEDGER_FILE) throw new ConfigError('PSEUDO_ERASURE_LEDGER_FILE: only for PSEUDO_ERASURE_LEDGER=sqlite');
  if (env.PSEUDO_ERASURE_LEDGER === 'sqlite' && env.PSEUDO_ERASURE_LEDGER_TABLE) throw new ConfigError('PSEUDO_ERASURE_LEDGER_TABLE: only for PSEUDO_ERASURE_LEDGER=dynamodb');
  const ledger: ErasureLedgerConfig =
    env.PSEUDO_ERASURE_LEDGER === 'sqlite'
      ? { store: 'sqlite', file: ledgerFile }
      : { store: 'dynamodb', table: require('PSEUDO_ERASURE_LEDGER_TABLE', 'PSEUDO_ERASURE_LEDGER=dynamodb'), region: env.AWS_REGION, endpoint: env.PSEUDO_AWS_ENDPOINT };
  const erasure: ErasureConfig = {
    registryFile: env.PSEUDO_ERASURE_REGISTRY_FILE ? resolve(env.PSEUDO_ERASURE_REGISTRY_FILE) : undefined,
    ledgerFile,
    ledgerHeadFile: resolve(`${dataDir}/erasure-ledger.head.json`),
    ledger,
    runner:
      env.PSEUDO_ERASURE_RUNNER === 'local'
        ? { kind: 'local', python: resolve(env.PSEUDO_ERASURE_PYTHON), sparkMaster: env.PSEUDO_ERASURE_SPARK_MASTER, jars: resolve(env.PSEUDO_ERASURE_SPARK_JARS), workDir: resolve(`${dataDir}/erasure-runs`) }
        : {
            kind: 'emr',
            clusterId: requireEmr('PSEUDO_ERASURE_EMR_CLUSTER_ID'),
            jobUri: requireEmr('PSEUDO_ERASURE_EMR_JOB_URI'),
            workUri: requireEmr('PSEUDO_ERASURE_EMR_WORK_URI').replace(/\/$/, ''),
            pyFiles: env.PSEUDO_ERASURE_EMR_PY_FILES ? env.PSEUDO_ERASURE_EMR_PY_FILES.split(',') : [],
            region: env.AWS_REGION,
            endpoint: env.PSEUDO_AWS_ENDPOINT,
          },
    maxAttempts: env.PSEUDO_ERASURE_MAX_ATTEMPTS,
    pollSeconds: env.PSEUDO_ERASURE_POLL_SECONDS,
    orphanGraceSeconds: env.PSEUDO_ERASURE_ORPHAN_GRACE_SECONDS,
    retrySeconds: env.PSEUDO_ERASURE_RETRY_SECONDS,
    cacheSeconds: env.PSEUDO_ERASURE_CACHE_SECONDS,
    maintenanceIntervalHours: env.PSEUDO_MAINTENANCE_INTERVAL_HOURS,
  };

  return {
    host: env.PSEUDO_HOST,
    port: env.PSEUDO_PORT,
    workers: env.PSEUDO_WORKERS,
    dataDir,
    policyFile: resolve(env.PSEUDO_POLICY_FILE),
    compatContext: env.PSEUDO_COMPAT_CONTEXT,
    logLevel: env.PSEUDO_LOG_LEVEL,
    metrics: { namespace: env.PSEUDO_METRICS_NAMESPACE, service: env.PSEUDO_METRICS_SERVICE },
    keyring,
    apiKeys,
    limits: { maxBodyBytes: env.PSEUDO_MAX_BODY_BYTES, maxValues: env.PSEUDO_MAX_VALUES, maxValueBytes: env.PSEUDO_MAX_VALUE_BYTES },
    cacheEntries: env.PSEUDO_CACHE_ENTRIES,
    people,
    trustedProxies: trustedProxiesOf(env.PSEUDO_TRUSTED_PROXIES),
    erasure,
    aws: { region: env.AWS_REGION, endpoint: env.PSEUDO_AWS_ENDPOINT },
  };
}

/** `2` (hops) or `10.0.0.0/8, 192.168.1.7, fd00::/8` (proxies' addresses); every entry checked. */
function trustedProxiesOf(text: string | undefined): TrustedProxies {
  if (text === undefined) return { kind: 'none' };
  const shape = 'PSEUDO_TRUSTED_PROXIES: must be a hop count (1-16) or a comma-separated list of IP addresses and CIDR ranges';
  if (/^\s*\d+\s*$/.test(text)) {
    const hops = Number(text);
    if (hops < 1 || hops > 16) throw new ConfigError(shape);
    return { kind: 'hops', hops };
  }
  const ranges = text.split(',').map((entry) => entry.trim());
  for (const range of ranges) {
    const [address = '', prefix, ...rest] = range.split('/');
    const family = isIP(address);
    const bits = family === 6 ? 128 : 32;
    if (family === 0 || rest.length > 0 || (prefix !== undefined && !(/^\d{1,3}$/.test(prefix) && Number(prefix) <= bits))) throw new ConfigError(shape);
  }
  return { kind: 'ranges', ranges };
}

/** Compares group DNs as directories do: case and spaces around separators do not matter. */
export function normalizeDn(dn: string): string {
  return dn
    .split(',')
    .map((rdn) => rdn.split('=').map((part) => part.trim()).join('='))
    .join(',')
    .toLowerCase();
}

const roleMapSchema = z.record(z.string().min(3), z.array(z.enum(ROLES)).min(1));

function ldapConfig(env: z.infer<typeof environmentSchema>): LdapConfig | undefined {
  if (!env.PSEUDO_LDAP_URL) return undefined;
  const url = env.PSEUDO_LDAP_URL;
  const startTls = env.PSEUDO_LDAP_START_TLS === 'true';
  if (url.startsWith('ldap://') && !startTls && env.PSEUDO_LDAP_ALLOW_PLAIN !== 'true') {
    throw new ConfigError('PSEUDO_LDAP_URL: plain ldap:// sends passwords in clear; use ldaps://, or PSEUDO_LDAP_START_TLS=true, or allow it explicitly with PSEUDO_LDAP_ALLOW_PLAIN=true');
  }
  if (url.startsWith('ldaps://') && startTls) throw new ConfigError('PSEUDO_LDAP_START_TLS: only for ldap:// URLs; ldaps:// is TLS from the start');
  const need = (name: keyof typeof env): string => {
    const value = env[name];
    if (typeof value !== 'string' || value === '') throw new ConfigError(`${name}: required when PSEUDO_LDAP_URL is set`);
    return value;
  };
  const sources = [env.PSEUDO_LDAP_BIND_PASSWORD, env.PSEUDO_LDAP_BIND_PASSWORD_FILE, env.PSEUDO_LDAP_BIND_PASSWORD_SECRET_ID].filter((v) => v !== undefined);
  if (sources.length !== 1) {
    throw new ConfigError('PSEUDO_LDAP_BIND_PASSWORD: set exactly one of PSEUDO_LDAP_BIND_PASSWORD, PSEUDO_LDAP_BIND_PASSWORD_FILE, PSEUDO_LDAP_BIND_PASSWORD_SECRET_ID');
  }
  const bindPassword: BindPasswordSource = env.PSEUDO_LDAP_BIND_PASSWORD
    ? { kind: 'env', value: env.PSEUDO_LDAP_BIND_PASSWORD }
    : env.PSEUDO_LDAP_BIND_PASSWORD_FILE
      ? { kind: 'file', path: resolve(env.PSEUDO_LDAP_BIND_PASSWORD_FILE) }
      : { kind: 'secret', secretId: env.PSEUDO_LDAP_BIND_PASSWORD_SECRET_ID!, region: env.AWS_REGION, endpoint: env.PSEUDO_AWS_ENDPOINT };
  let roleJson: unknown;
  try {
    roleJson = JSON.parse(need('PSEUDO_LDAP_ROLE_MAP'));
  } catch {
    throw new ConfigError('PSEUDO_LDAP_ROLE_MAP: must be JSON, {"<group DN>": ["reidentify", ...]}');
  }
  const roles = roleMapSchema.safeParse(roleJson);
  if (!roles.success) throw new ConfigError(`PSEUDO_LDAP_ROLE_MAP: must map group DNs to lists of ${ROLES.join(', ')}`);
  return {
    url,
    startTls,
    caFile: env.PSEUDO_LDAP_CA_FILE ? resolve(env.PSEUDO_LDAP_CA_FILE) : undefined,
    bindDn: need('PSEUDO_LDAP_BIND_DN'),
    bindPassword,
    userBase: need('PSEUDO_LDAP_USER_BASE'),
    userFilter: env.PSEUDO_LDAP_USER_FILTER,
    usernameAttribute: env.PSEUDO_LDAP_USERNAME_ATTRIBUTE,
    groups: env.PSEUDO_LDAP_GROUPS === 'memberOf' ? { mode: 'memberOf' } : { mode: 'ad-nested', base: need('PSEUDO_LDAP_GROUP_BASE') },
    roleMap: new Map(Object.entries(roles.data).map(([dn, list]) => [normalizeDn(dn), list])),
    timeoutMs: env.PSEUDO_LDAP_TIMEOUT_MS,
  };
}
