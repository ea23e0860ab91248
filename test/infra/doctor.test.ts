/** The infra doctor against a real slapd: every check passes for a real user, and each failure says what to fix. */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LdapSettings } from '../../infra/config.ts';
import { doctor } from '../../infra/doctor.ts';
import { BASE_DN, BIND_DN, BIND_PASSWORD, PEOPLE, startSlapd, type TestDirectory } from '../support/slapd.ts';

let directory: TestDirectory;
let settings: LdapSettings;
beforeAll(async () => {
  directory = await startSlapd();
  settings = {
    url: directory.ldapsUrl.replace('127.0.0.1', 'localhost'),
    serverType: 'OpenLDAP',
    bindDn: BIND_DN,
    bindPasswordEnv: 'UNUSED',
    caFile: directory.caFile,
    userSearchBase: `ou=people,${BASE_DN}`,
    groupSearchBase: `ou=groups,${BASE_DN}`,
    accessFilter: `(memberOf=cn=pseudonymization-users,ou=groups,${BASE_DN})`,
    enableSshLogin: false,
  };
});
afterAll(async () => {
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- undefined when beforeAll failed
  await directory?.stop();
});

const run = (overrides: Partial<LdapSettings> = {}, input: { user?: string; password?: string; ca?: string } = {}) =>
  doctor({ ldap: { ...settings, ...overrides }, bindPassword: input.password ?? BIND_PASSWORD, caPem: readFileSync(input.ca ?? directory.caFile), user: input.user ?? PEOPLE.steward.username, timeoutMs: 2000 });

describe('infra doctor', () => {
  it('passes DNS, TCP, TLS, bind, user and groups for a real user', async () => {
    const checks = await run();
    expect(checks.map((c) => [c.name, c.ok])).toEqual([['DNS', true], ['TCP', true], ['TLS', true], ['bind', true], ['user', true], ['groups', true]]);
    expect(checks.find((c) => c.name === 'groups')!.detail).toContain('cn=data-stewards');
    expect(checks.find((c) => c.name === 'TLS')!.detail).toMatch(/verifies with ldap.caFile; expires in \d+ days/);
  });

  const failures: [string, Partial<LdapSettings>, { user?: string; password?: string; wrongCa?: boolean }, string, RegExp][] = [
    ['a name that does not resolve', { url: 'ldaps://no-such-host.invalid:636' }, {}, 'DNS', /does not resolve/],
    ['a closed port', { url: 'ldaps://localhost:9' }, {}, 'TCP', /nothing listens on localhost:9/],
    ['a certificate from another CA', {}, { wrongCa: true }, 'TLS', /not signed by the CA in ldap.caFile/],
    ['a wrong bind password', {}, { password: 'nope' }, 'bind', /refused cn=pseudo-bind.*invalid credentials/],
    ['a user outside the access filter', {}, { user: PEOPLE.outsider.username }, 'user', /filtered out/],
    ['an unknown user', {}, { user: 'nobody' }, 'user', /is missing/],
  ];
  it.each(failures)('explains %s', async (_name, overrides, input, failing, message) => {
    const checks = await run(overrides, { ...input, ...(input.wrongCa ? { ca: directory.wrongCaFile } : {}) });
    const last = checks.at(-1)!;
    expect(last.name).toBe(failing);
    expect(last.ok).toBe(false);
    expect(last.detail).toMatch(message);
    expect(checks.slice(0, -1).every((c) => c.ok)).toBe(true);
  });
});
