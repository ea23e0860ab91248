import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../api/config/config.ts';
import { ConfigError } from '../../api/errors.ts';
import { PolicySet } from '../../api/policy/policy.ts';
import { engineOf, keyringOf } from '../support/engine.ts';

describe('configuration from the environment', () => {
  it('defaults to the embedded, no-AWS setting', () => {
    const config = loadConfig({});
    expect(config.keyring.provider).toBe('local');
    expect(config.apiKeys.provider).toBe('local');
    expect(config.limits).toEqual({ maxBodyBytes: 6 * 1024 * 1024, maxValues: 10_000, maxValueBytes: 1024 });
    expect(config.host).toBe('127.0.0.1');
  });

  it.each([
    [{ PSEUDO_PORT: 'http' }, 'PSEUDO_PORT: must be a whole number'],
    [{ PSEUDO_MAX_BODY_BYTES: String(7 * 1024 * 1024) }, 'PSEUDO_MAX_BODY_BYTES'],
    [{ PSEUDO_KEYRING: 'vault' }, 'PSEUDO_KEYRING'],
    [{ PSEUDO_KEYRING: 'aws' }, 'PSEUDO_KEYRING_SECRET_ID: required when PSEUDO_KEYRING=aws'],
    [{ PSEUDO_KEYRING: 'aws', PSEUDO_KEYRING_SECRET_ID: 's' }, 'PSEUDO_KMS_KEY_ID: required when PSEUDO_KEYRING=aws'],
    [{ PSEUDO_API_KEYS: 'aws' }, 'PSEUDO_API_KEYS_SECRET_ID: required'],
    [{ PSEUDO_AWS_ENDPOINT: 'not a url' }, 'PSEUDO_AWS_ENDPOINT'],
    [{ PSEUDO_ERASURE_LEDGER: 'postgres' }, 'PSEUDO_ERASURE_LEDGER'],
    [{ PSEUDO_ERASURE_LEDGER: 'dynamodb' }, 'PSEUDO_ERASURE_LEDGER_TABLE: required when PSEUDO_ERASURE_LEDGER=dynamodb'],
    [{ PSEUDO_ERASURE_LEDGER: 'dynamodb', PSEUDO_ERASURE_LEDGER_TABLE: 'a b' }, 'PSEUDO_ERASURE_LEDGER_TABLE: must be a DynamoDB table name'],
    [{ PSEUDO_ERASURE_LEDGER: 'dynamodb', PSEUDO_ERASURE_LEDGER_TABLE: 'ledger', PSEUDO_ERASURE_LEDGER_FILE: 'x.db' }, 'PSEUDO_ERASURE_LEDGER_FILE: only for PSEUDO_ERASURE_LEDGER=sqlite'],
    [{ PSEUDO_ERASURE_LEDGER_TABLE: 'ledger' }, 'PSEUDO_ERASURE_LEDGER_TABLE: only for PSEUDO_ERASURE_LEDGER=dynamodb'],
  ])('fails fast and names the variable: %o', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });

  it('keeps the erasure ledger in SQLite unless DynamoDB is chosen, with the AWS region and endpoint', () => {
    expect(loadConfig({ PSEUDO_DATA_DIR: '/tmp/d' }).erasure.ledger).toEqual({ store: 'sqlite', file: '/tmp/d/erasure-ledger.db' });
    expect(loadConfig({ PSEUDO_ERASURE_LEDGER: 'dynamodb', PSEUDO_ERASURE_LEDGER_TABLE: 'pseudo-erasure', AWS_REGION: 'eu-central-1', PSEUDO_AWS_ENDPOINT: 'http://127.0.0.1:5000' }).erasure.ledger).toEqual({
      store: 'dynamodb',
      table: 'pseudo-erasure',
      region: 'eu-central-1',
      endpoint: 'http://127.0.0.1:5000',
    });
  });

  it('never puts a value into the error message', () => {
    const secretLooking = 'sk-SENTINEL-do-not-print';
    expect(() => loadConfig({ PSEUDO_PORT: secretLooking })).not.toThrow(new RegExp(secretLooking));
  });
});

describe('policy file', () => {
  it.each([
    [{ contexts: { vin: { transform: 'rot13' } } }, 'contexts.vin.transform'],
    [{ contexts: { 'bad name!': { transform: 'hash' } } }, 'contexts'],
    [{ contexts: { pin: { transform: 'fpe', alphabet: 'digits', maxLength: 4 } } }, "maxLength is below FF1's minimum"],
    [{ contexts: { code: { transform: 'fpe', alphabet: { custom: 'aab' } } } }, 'repeats a character'],
    [{ contexts: {}, unknownContexts: 'allow' }, 'unknownContexts'],
    [{ contexts: {}, extra: true }, '(root)'],
  ])('rejects %o naming the key', (json, message) => {
    expect(() => PolicySet.parse(json, 'policies.json')).toThrow(ConfigError);
    expect(() => PolicySet.parse(json, 'policies.json')).toThrow(message);
  });

  it('applies an explicit default policy to unknown, well-formed contexts only', () => {
    const policies = PolicySet.parse({ contexts: { vin: { transform: 'hash' } }, unknownContexts: { transform: 'deterministic' } }, 'p.json');
    expect(policies.resolve('anything').transform).toBe('deterministic');
    expect(policies.resolve('vin').transform).toBe('hash');
    expect(() => policies.resolve('no spaces allowed')).toThrow(/context must be/);
    const engine = engineOf(keyringOf([{ version: 1, state: 'active', root: new Uint8Array(64).fill(7) }]));
    expect(engine.pseudonymize('vin', ['x'], { deterministic: true }).pseudonyms[0]).toMatch(/^s1\./);
  });

  it('reports an unreadable or non-JSON file with the variable name', () => {
    expect(() => PolicySet.fromFile('/nonexistent/policies.json')).toThrow('PSEUDO_POLICY_FILE: cannot read');
    expect(() => PolicySet.fromFile('README.md')).toThrow('PSEUDO_POLICY_FILE: README.md is not valid JSON');
  });
});
