/**
 * People sign in with their directory identity: the real service over HTTP against a real slapd
 * (LDAPS with a CA made by the test, memberof and ppolicy overlays). Roles from directory groups are
 * enforced on every endpoint; every way of failing is a 401; the directory's own trouble is a 503.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { Client } from 'ldapts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMoto, type Moto } from '../support/moto.ts';
import { startTestService, withTestService, type TestService } from '../support/service.ts';
import { BIND_DN, BIND_PASSWORD, PEOPLE, startSlapd, type TestDirectory } from '../support/slapd.ts';

let directory: TestDirectory;
let api: TestService;
beforeAll(async () => {
  directory = await startSlapd();
  api = await startTestService({ ...directory.env, PSEUDO_LOGIN_MAX_FAILURES: '1000' });
});
afterAll(async () => {
  await api.close();
  await directory.stop();
});

interface Problem { type: string; detail?: string }
interface Session { token: string; tokenType: string; expiresAt: string; roles: string[] }

async function signIn(service: TestService, username: string, password: string, forwardedFor?: string) {
  return service.call('POST', '/v1/login', { body: { username, password }, headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor } });
}

interface AuditEntry { action: string; outcome: string; actor: { kind: string; id?: string }; reason?: string; clientAddress?: string }

function auditEntries(service: TestService): AuditEntry[] {
  return service
    .logs()
    .split('\n')
    .filter((line) => line.includes('"audit":true'))
    .map((line) => JSON.parse(line) as AuditEntry);
}

/** How many failed binds slapd's ppolicy has recorded on a person's entry (pwdFailureTime): whether a guess reached the directory. */
async function failedBinds(username: string): Promise<number> {
  const client = new Client({ url: directory.ldapsUrl, tlsOptions: { ca: [readFileSync(directory.caFile)] } });
  try {
    await client.bind(BIND_DN, BIND_PASSWORD);
    const { searchEntries } = await client.search(`uid=${username},ou=people,dc=example,dc=org`, { scope: 'base', attributes: ['pwdFailureTime'] });
    const times = searchEntries[0]?.pwdFailureTime;
    return times === undefined ? 0 : [times].flat().length;
  } finally {
    await client.unbind();
  }
}

async function tokenOf(person: { username: string; password: string }): Promise<string> {
  const res = await signIn(api, person.username, person.password);
  expect(res.status).toBe(200);
  return (res.json as Session).token;
}

describe('signing in', () => {
  it('gives each person a session token carrying the roles of their groups', async () => {
    for (const [person, roles] of [[PEOPLE.officer, ['privacy-officer']], [PEOPLE.steward, ['reidentify']], [PEOPLE.engineer, ['pseudonymize']]] as const) {
      const res = await signIn(api, person.username, person.password);
      expect(res.status).toBe(200);
      const session = res.json as Session;
      expect(session.roles).toEqual(roles);
      expect(session.tokenType).toBe('Bearer');
      expect(Date.parse(session.expiresAt) - Date.now()).toBeGreaterThan(14 * 60_000);
    }
  });

  it.each([
    ['a wrong password', PEOPLE.steward.username, 'not-the-password'],
    ['an unknown user', 'nobody', 'whatever'],
    ['a user outside the access filter', PEOPLE.outsider.username, PEOPLE.outsider.password],
    ['a locked account (ppolicy)', PEOPLE.locked.username, PEOPLE.locked.password],
    ['an empty password (an unauthenticated bind would succeed)', PEOPLE.steward.username, ''],
    ['a wildcard user name', '*', PEOPLE.steward.password],
    ['a wildcard completing a real name', 'stev*', PEOPLE.steward.password],
    ['a filter injection', '*)(uid=*))(|(uid=*', PEOPLE.steward.password],
    ['an injection closing the filter', 'steve)(|(uid=*', PEOPLE.steward.password],
    ['a NUL byte in the user name', 'steve\u0000', PEOPLE.steward.password],
    ['a NUL byte in the password', PEOPLE.steward.username, `${PEOPLE.steward.password}\u0000`],
  ])('rejects %s with the same 401', async (_case, username, password) => {
    const res = await signIn(api, username, password);
    expect(res.status).toBe(401);
    expect((res.json as Problem).type).toBe('urn:pseudonymization:problem:unauthenticated');
    expect((res.json as Problem).detail).toBe('the user name or password is not correct');
  });

  it('refuses a person whose groups grant no role', async () => {
    const res = await signIn(api, PEOPLE.noRole.username, PEOPLE.noRole.password);
    expect(res.status).toBe(403);
  });

  it('rejects a malformed body as 400 and a non-JSON one as 415', async () => {
    expect((await api.call('POST', '/v1/login', { body: { username: 'steve' } })).status).toBe(400);
    expect((await api.call('POST', '/v1/login', { rawBody: 'username=steve', contentType: 'application/x-www-form-urlencoded' })).status).toBe(415);
  });
});

describe('roles are enforced on every endpoint', () => {
  const VIN = '1HGCM82633A004352';
  it('officer, steward and engineer each reach exactly what their roles allow', async () => {
    const engineer = await tokenOf(PEOPLE.engineer);
    const steward = await tokenOf(PEOPLE.steward);
    const officer = await tokenOf(PEOPLE.officer);
    const made = await api.call('POST', '/v1/pseudonymize', { headers: { authorization: `Bearer ${engineer}` }, body: { context: 'vin', values: [VIN] } });
    expect(made.status).toBe(200);
    const pseudonyms = (made.json as { pseudonyms: string[] }).pseudonyms;
    const endpoints = [
      { path: '/v1/pseudonymize', body: { context: 'vin', values: [VIN] }, role: 'pseudonymize' },
      { path: '/pseudonymization', body: { identifiers: [VIN] }, role: 'pseudonymize' },
      { path: '/v1/reidentify', body: { context: 'vin', pseudonyms }, role: 'reidentify' },
      { path: '/reidentification', body: { pseudonyms }, role: 'reidentify' },
    ];
    const people = [
      { token: engineer, roles: ['pseudonymize'] },
      { token: steward, roles: ['reidentify'] },
      { token: officer, roles: ['privacy-officer'] },
    ];
    for (const { token, roles } of people) {
      for (const endpoint of endpoints) {
        const res = await api.call('POST', endpoint.path, { headers: { authorization: `Bearer ${token}` }, body: endpoint.body });
        expect(res.status, `${roles[0]} on ${endpoint.path}`).toBe(roles.includes(endpoint.role) ? 200 : 403);
      }
    }
    const back = await api.call('POST', '/v1/reidentify', { headers: { authorization: `Bearer ${steward}` }, body: { context: 'vin', pseudonyms } });
    expect((back.json as { values: string[] }).values).toEqual([VIN]);
  });

  it('rejects a tampered, foreign or missing token with 401', async () => {
    const steward = await tokenOf(PEOPLE.steward);
    const [header, payload, signature] = steward.split('.');
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload!, 'base64url').toString()), roles: ['reidentify', 'pseudonymize'] })).toString('base64url');
    for (const token of [`${header}.${forged}.${signature}`, `${steward.slice(0, -3)}abc`, 'not.a.token', 'eyJhbGciOiJub25lIn0.e30.']) {
      const res = await api.call('POST', '/v1/reidentify', { headers: { authorization: `Bearer ${token}` }, body: { context: 'vin', pseudonyms: [] } });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toContain('Bearer');
    }
  });

  it('writes audit entries with the person for sign-ins and reidentify, and never the password', async () => {
    const steward = await tokenOf(PEOPLE.steward);
    await api.call('POST', '/v1/reidentify', { headers: { authorization: `Bearer ${steward}` }, body: { context: 'vin', pseudonyms: [] } });
    await signIn(api, PEOPLE.steward.username, 'wrong-password-SENTINEL');
    const engineer = await tokenOf(PEOPLE.engineer);
    await api.call('POST', '/v1/reidentify', { headers: { authorization: `Bearer ${engineer}` }, body: { context: 'vin', pseudonyms: [] } });
    const audit = api
      .logs()
      .split('\n')
      .filter((line) => line.includes('"audit":true'))
      .map((line) => JSON.parse(line) as { action: string; outcome: string; actor: { kind: string; id?: string }; reason?: string });
    expect(audit).toContainEqual(expect.objectContaining({ action: 'sign-in', outcome: 'success', actor: { kind: 'person', id: 'steve' } }));
    expect(audit).toContainEqual(expect.objectContaining({ action: 'reidentify', outcome: 'success', actor: { kind: 'person', id: 'steve' } }));
    expect(audit).toContainEqual(expect.objectContaining({ action: 'sign-in', outcome: 'failure', actor: { kind: 'person', id: 'steve' }, reason: 'invalid-credentials' }));
    expect(audit).toContainEqual(expect.objectContaining({ action: 'reidentify', outcome: 'denied', actor: { kind: 'person', id: 'erin' }, reason: 'forbidden' }));
    // A name not in the directory may be a mistyped password: it is not recorded.
    expect(audit).toContainEqual(expect.objectContaining({ action: 'sign-in', outcome: 'failure', actor: { kind: 'anonymous' }, reason: 'unknown-user' }));
    const logs = api.logs();
    for (const secret of ['wrong-password-SENTINEL', PEOPLE.steward.password, PEOPLE.engineer.password, BIND_PASSWORD, steward]) expect(logs.includes(secret)).toBe(false);
  });
});

describe('failed sign-ins are throttled', () => {
  it('per user name, and per client address, with Retry-After', async () => {
    await withTestService({ ...directory.env, PSEUDO_LOGIN_MAX_FAILURES: '3', PSEUDO_LOGIN_LOCK_SECONDS: '60' }, async (service) => {
      for (let i = 0; i < 3; i++) expect((await signIn(service, PEOPLE.steward.username, 'wrong')).status).toBe(401);
      const locked = await signIn(service, PEOPLE.steward.username, PEOPLE.steward.password);
      expect(locked.status).toBe(429);
      expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(50);
      expect((locked.json as Problem).type).toBe('urn:pseudonymization:problem:too-many-attempts');
      // The same address failed three times as well: another user from it is held back too.
      expect((await signIn(service, PEOPLE.engineer.username, PEOPLE.engineer.password)).status).toBe(429);
    });
  });
});

describe('user-name spellings the directory takes for the same person', () => {
  const SPELLINGS = ['ſteve', 'ｓｔｅｖｅ', 'ﬆeve', ' steve', 'steve ', 'STEVE'];

  it('sign in as the directory\'s own name: session subject and audit actor are `steve`, never the typed spelling', async () => {
    for (const spelling of SPELLINGS) {
      const res = await signIn(api, spelling, PEOPLE.steward.password);
      expect(res.status, JSON.stringify(spelling)).toBe(200);
      expect(decodeJwt((res.json as Session).token).sub).toBe('steve');
      await signIn(api, spelling, 'not-the-password');
    }
    const actors = auditEntries(api).filter((entry) => entry.action === 'sign-in' && entry.actor.kind === 'person').map((entry) => entry.actor.id);
    for (const spelling of SPELLINGS.filter((s) => s !== 'steve')) expect(actors).not.toContain(spelling);
    expect(auditEntries(api)).toContainEqual(expect.objectContaining({ action: 'sign-in', outcome: 'failure', actor: { kind: 'person', id: 'steve' }, reason: 'invalid-credentials' }));
  });

  it('count toward one lock, and a locked person is refused under any spelling before the directory is asked', async () => {
    // One trusted hop and a new client address per attempt: only the user-name lock is in play.
    let client = 0;
    const from = () => `203.0.113.${++client}`;
    await withTestService({ ...directory.env, PSEUDO_LOGIN_MAX_FAILURES: '3', PSEUDO_LOGIN_LOCK_SECONDS: '60', PSEUDO_TRUSTED_PROXIES: '1' }, async (service) => {
      for (const spelling of ['erin ', 'ｅｒｉｎ', ' ERIN']) expect((await signIn(service, spelling, 'wrong', from())).status).toBe(401);
      expect((await signIn(service, PEOPLE.engineer.username, PEOPLE.engineer.password, from())).status).toBe(429);
      const bindsBefore = await failedBinds('erin');
      for (const spelling of ['erin ', 'ｅｒｉｎ', ' erin', 'Erin', 'ｅrin', 'erin  ']) {
        expect((await signIn(service, spelling, PEOPLE.engineer.password, from())).status, JSON.stringify(spelling)).toBe(429);
        expect((await signIn(service, spelling, 'wrong-again', from())).status, JSON.stringify(spelling)).toBe(429);
      }
      // Twelve attempts while locked, none of them a bind on erin's entry.
      expect(await failedBinds('erin')).toBe(bindsBefore);
      // Another person is not held back: the lock is erin's.
      expect((await signIn(service, PEOPLE.steward.username, PEOPLE.steward.password, from())).status).toBe(200);
    });
  });
});

describe('the client address behind proxies (PSEUDO_TRUSTED_PROXIES)', () => {
  const settings = { PSEUDO_LOGIN_MAX_FAILURES: '3', PSEUDO_LOGIN_LOCK_SECONDS: '60' };
  const failThreeTimes = async (service: TestService, forwardedFor: string) => {
    // Three different unknown names: only the address lock can build up.
    for (const name of ['nobody-1', 'nobody-2', 'nobody-3']) expect((await signIn(service, name, 'wrong', forwardedFor)).status).toBe(401);
  };

  it('behind one trusted hop, clients with different X-Forwarded-For do not share a throttle', async () => {
    await withTestService({ ...directory.env, ...settings, PSEUDO_TRUSTED_PROXIES: '1' }, async (service) => {
      await failThreeTimes(service, '198.51.100.1');
      expect((await signIn(service, PEOPLE.steward.username, PEOPLE.steward.password, '198.51.100.1')).status).toBe(429);
      // A spoofed entry before the one the trusted hop appended changes nothing.
      expect((await signIn(service, PEOPLE.steward.username, PEOPLE.steward.password, '198.51.100.2, 198.51.100.1')).status).toBe(429);
      expect((await signIn(service, PEOPLE.steward.username, PEOPLE.steward.password, '198.51.100.2')).status).toBe(200);
      const addresses = auditEntries(service).map((entry) => entry.clientAddress);
      expect(addresses).toContain('198.51.100.1');
      expect(addresses).toContain('198.51.100.2');
      expect(addresses).not.toContain('127.0.0.1');
    });
  });

  it('without the setting, X-Forwarded-For is ignored: the peer address is the client', async () => {
    await withTestService({ ...directory.env, ...settings }, async (service) => {
      await failThreeTimes(service, '198.51.100.1');
      expect((await signIn(service, PEOPLE.steward.username, PEOPLE.steward.password, '198.51.100.2')).status).toBe(429);
      expect(auditEntries(service).map((entry) => entry.clientAddress)).not.toContain('198.51.100.1');
    });
  });
});

describe('the sign-in body', () => {
  it('is refused above 4 KiB with 413 before it is parsed, on Express and in the core Lambda calls', async () => {
    const nested = Buffer.from('['.repeat(6 * 1024 * 1024));
    for (const body of [nested, Buffer.from(JSON.stringify({ username: 'steve', password: 'x'.repeat(5000) }))]) {
      const res = await api.call('POST', '/v1/login', { rawBody: body });
      expect(res.status).toBe(413);
      expect((res.json as Problem).type).toBe('urn:pseudonymization:problem:payload-too-large');
      const core = await api.running.service.handle({ method: 'POST', path: '/v1/login', query: {}, headers: { 'content-type': 'application/json' }, body, clientAddress: '127.0.0.1' });
      expect(core.status).toBe(413);
    }
    // A sign-in body of ordinary size is still read.
    expect((await signIn(api, PEOPLE.steward.username, PEOPLE.steward.password)).status).toBe(200);
  });
});

describe('the directory itself', () => {
  it('answers 503 (not 500) when it is down', async () => {
    await withTestService({ ...directory.env, PSEUDO_LDAP_URL: 'ldaps://127.0.0.1:9' }, async (service) => {
      const res = await signIn(service, PEOPLE.steward.username, PEOPLE.steward.password);
      expect(res.status).toBe(503);
      expect((res.json as Problem).type).toBe('urn:pseudonymization:problem:directory-unavailable');
      expect((res.json as Problem).detail).toContain('cannot reach the directory');
      // An empty password is refused before the directory is asked.
      expect((await signIn(service, PEOPLE.steward.username, '')).status).toBe(401);
    });
  });

  it('explains a certificate signed by a CA it was not told to trust', async () => {
    await withTestService({ ...directory.env, PSEUDO_LDAP_CA_FILE: directory.wrongCaFile }, async (service) => {
      const res = await signIn(service, PEOPLE.steward.username, PEOPLE.steward.password);
      expect(res.status).toBe(503);
      expect((res.json as Problem).detail).toMatch(/TLS certificate is not trusted \(SELF_SIGNED_CERT_IN_CHAIN\)/);
    });
  });

  it('answers 503 when the directory refuses the service bind account', async () => {
    await withTestService({ ...directory.env, PSEUDO_LDAP_BIND_PASSWORD: 'not-the-bind-password' }, async (service) => {
      const res = await signIn(service, PEOPLE.steward.username, PEOPLE.steward.password);
      expect(res.status).toBe(503);
      expect((res.json as Problem).detail).toContain('service bind account');
    });
  });

  it('works over StartTLS on plain LDAP, and refuses plain LDAP unless allowed explicitly', async () => {
    await withTestService({ ...directory.env, PSEUDO_LDAP_URL: directory.ldapUrl, PSEUDO_LDAP_START_TLS: 'true' }, async (service) => {
      expect((await signIn(service, PEOPLE.steward.username, PEOPLE.steward.password)).status).toBe(200);
    });
    await expect(startTestService({ ...directory.env, PSEUDO_LDAP_URL: directory.ldapUrl })).rejects.toThrow(/plain ldap:\/\/ sends passwords in clear/);
  });

  it('answers 404 for sign-in when no directory is configured', async () => {
    await withTestService({}, async (service) => {
      expect((await signIn(service, 'steve', 'x')).status).toBe(404);
    });
  });
});

describe('the bind password', () => {
  let moto: Moto;
  beforeAll(async () => {
    moto = await startMoto();
  });
  afterAll(async () => {
    await moto.stop();
  });

  it('comes from a file or from Secrets Manager (plain, JSON, or the EMR bind-credentials shape), read once', async () => {
    const file = join(api.dataDir, 'bind-password');
    writeFileSync(file, `${BIND_PASSWORD}\n`, { mode: 0o600 });
    const { SecretsManagerClient, CreateSecretCommand } = await import('@aws-sdk/client-secrets-manager');
    const secrets = new SecretsManagerClient({ region: moto.env.AWS_REGION!, endpoint: moto.endpoint });
    await secrets.send(new CreateSecretCommand({ Name: 'ldap/plain', SecretString: BIND_PASSWORD }));
    await secrets.send(new CreateSecretCommand({ Name: 'ldap/json', SecretString: JSON.stringify({ username: 'cn=pseudo-bind', password: BIND_PASSWORD }) }));
    // The shape EMR's LDAP integration reads: one pair, bind DN -> password.
    await secrets.send(new CreateSecretCommand({ Name: 'ldap/emr', SecretString: JSON.stringify({ [BIND_DN]: BIND_PASSWORD }) }));
    const withoutPassword = Object.fromEntries(Object.entries(directory.env).filter(([name]) => name !== 'PSEUDO_LDAP_BIND_PASSWORD'));
    const sources: Record<string, string>[] = [{ PSEUDO_LDAP_BIND_PASSWORD_FILE: file }, { ...moto.env, PSEUDO_LDAP_BIND_PASSWORD_SECRET_ID: 'ldap/plain' }, { ...moto.env, PSEUDO_LDAP_BIND_PASSWORD_SECRET_ID: 'ldap/json' }, { ...moto.env, PSEUDO_LDAP_BIND_PASSWORD_SECRET_ID: 'ldap/emr' }];
    for (const source of sources) {
      await withTestService({ ...withoutPassword, ...source }, async (service) => {
        expect((await signIn(service, PEOPLE.steward.username, PEOPLE.steward.password)).status, JSON.stringify(Object.keys(source))).toBe(200);
      });
    }
  });
});
