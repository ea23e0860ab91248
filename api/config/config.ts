/**
 * The one place that reads the environment. Parsed and validated once at start-up into a typed
 * Config; a bad value fails fast with a message that names the variable (never its value, which
 * could be a secret). Every default is the embedded, no-AWS setting.
 */
import { resolve } from 'node:path';
import { z } from 'zod';
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

export interface Config {
  readonly host: string;
  readonly port: number;
  readonly workers: number;
  readonly dataDir: string;
  readonly policyFile: string;
  readonly compatContext: string;
  readonly logLevel: z.infer<typeof environmentSchema>['PSEUDO_LOG_LEVEL'];
  readonly keyring: KeyringConfig;
  readonly apiKeys: ApiKeysConfig;
  readonly limits: { readonly maxBodyBytes: number; readonly maxValues: number; readonly maxValueBytes: number };
  readonly cacheEntries: number;
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
  const require = (name: 'PSEUDO_KEYRING_SECRET_ID' | 'PSEUDO_KMS_KEY_ID' | 'PSEUDO_API_KEYS_SECRET_ID', because: string): string => {
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

  return {
    host: env.PSEUDO_HOST,
    port: env.PSEUDO_PORT,
    workers: env.PSEUDO_WORKERS,
    dataDir,
    policyFile: resolve(env.PSEUDO_POLICY_FILE),
    compatContext: env.PSEUDO_COMPAT_CONTEXT,
    logLevel: env.PSEUDO_LOG_LEVEL,
    keyring,
    apiKeys,
    limits: { maxBodyBytes: env.PSEUDO_MAX_BODY_BYTES, maxValues: env.PSEUDO_MAX_VALUES, maxValueBytes: env.PSEUDO_MAX_VALUE_BYTES },
    cacheEntries: env.PSEUDO_CACHE_ENTRIES,
  };
}
