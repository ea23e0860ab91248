/**
 * A real OpenLDAP directory for tests: Debian's slapd (installed by scripts/setup.sh) in a temporary
 * folder, on free 127.0.0.1 ports (LDAPS, and plain LDAP for StartTLS), with a CA and server
 * certificate made here by openssl, the memberof and ppolicy overlays, and these people:
 *
 *   olivia  privacy officer           steve   data steward          erin  data engineer
 *   oscar   outside the access filter lucy    locked (ppolicy)      nora  allowed in, but no role group
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'ldapts';
import { freePort, startProcess, waitFor } from './processes.ts';

export const BASE_DN = 'dc=example,dc=org';
export const BIND_DN = `cn=pseudo-bind,ou=services,${BASE_DN}`;
export const BIND_PASSWORD = 'bind-secret-7f3a';
const ADMIN_DN = `cn=admin,${BASE_DN}`;
const ADMIN_PASSWORD = 'admin-secret-7f3a';

export const PEOPLE = {
  officer: { username: 'olivia', password: 'olivia-pw-7f3a' },
  steward: { username: 'steve', password: 'steve-pw-7f3a' },
  engineer: { username: 'erin', password: 'erin-pw-7f3a' },
  outsider: { username: 'oscar', password: 'oscar-pw-7f3a' },
  locked: { username: 'lucy', password: 'lucy-pw-7f3a' },
  noRole: { username: 'nora', password: 'nora-pw-7f3a' },
} as const;

export const ROLE_MAP = {
  [`cn=privacy-officers,ou=groups,${BASE_DN}`]: ['privacy-officer'],
  [`cn=data-stewards,ou=groups,${BASE_DN}`]: ['reidentify'],
  [`cn=data-engineers,ou=groups,${BASE_DN}`]: ['pseudonymize'],
};

export interface TestDirectory {
  readonly ldapsUrl: string;
  readonly ldapUrl: string;
  readonly caFile: string;
  readonly wrongCaFile: string;
  /** Settings for the service: LDAPS with the right CA, bind password from the environment. */
  readonly env: Record<string, string>;
  stop(): Promise<void>;
}

function openssl(cwd: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd, stdio: 'ignore' });
}

function makeCertificates(dir: string): void {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(dir, 'req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=Pseudonymization Test CA');
  openssl(dir, 'req', '-x509', ...ec, '-keyout', 'wrong-ca.key', '-out', 'wrong-ca.crt', '-days', '2', '-subj', '/CN=Some Other CA');
  openssl(dir, 'req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  openssl(dir, 'x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'server.ext');
}

function slapdConfig(dir: string): string {
  return `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
moduleload ppolicy
pidfile ${dir}/slapd.pid
TLSCACertificateFile ${dir}/ca.crt
TLSCertificateFile ${dir}/server.crt
TLSCertificateKeyFile ${dir}/server.key

database mdb
suffix "${BASE_DN}"
rootdn "${ADMIN_DN}"
rootpw ${ADMIN_PASSWORD}
directory ${dir}/db
maxsize 33554432

overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE

overlay ppolicy
ppolicy_default "cn=default,ou=policies,${BASE_DN}"
ppolicy_use_lockout

access to attrs=userPassword
  by self =xw
  by anonymous auth
  by * none
access to *
  by dn.exact="${BIND_DN}" read
  by self read
  by * none
`;
}

function person(uid: string, password: string, extra = ''): string {
  return `dn: uid=${uid},ou=people,${BASE_DN}
objectClass: inetOrgPerson
uid: ${uid}
cn: ${uid}
sn: ${uid}
userPassword: ${password}
${extra}`;
}

function group(cn: string, members: string[]): string {
  return `dn: cn=${cn},ou=groups,${BASE_DN}
objectClass: groupOfNames
cn: ${cn}
${members.map((uid) => `member: uid=${uid},ou=people,${BASE_DN}`).join('\n')}
`;
}

function directoryContent(): string {
  const p = PEOPLE;
  return [
    `dn: ${BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n`,
    ...['people', 'groups', 'services', 'policies'].map((ou) => `dn: ou=${ou},${BASE_DN}\nobjectClass: organizationalUnit\nou: ${ou}\n`),
    `dn: cn=default,ou=policies,${BASE_DN}\nobjectClass: organizationalRole\nobjectClass: pwdPolicy\ncn: default\npwdAttribute: userPassword\npwdLockout: TRUE\npwdMaxFailure: 100\n`,
    `dn: ${BIND_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: pseudo-bind\nuserPassword: ${BIND_PASSWORD}\n`,
    person(p.officer.username, p.officer.password),
    person(p.steward.username, p.steward.password),
    person(p.engineer.username, p.engineer.password),
    person(p.outsider.username, p.outsider.password),
    // 000001010000Z: locked until an administrator unlocks it (ppolicy).
    person(p.locked.username, p.locked.password, 'pwdAccountLockedTime: 000001010000Z\n'),
    person(p.noRole.username, p.noRole.password),
    group('pseudonymization-users', [p.officer.username, p.steward.username, p.engineer.username, p.locked.username, p.noRole.username]),
    group('privacy-officers', [p.officer.username]),
    group('data-stewards', [p.steward.username]),
    group('data-engineers', [p.engineer.username]),
  ].join('\n');
}

export async function startSlapd(): Promise<TestDirectory> {
  const dir = mkdtempSync(join(tmpdir(), 'slapd-'));
  mkdirSync(join(dir, 'db'));
  makeCertificates(dir);
  writeFileSync(join(dir, 'slapd.conf'), slapdConfig(dir));
  const [ldapsPort, ldapPort] = [await freePort(), await freePort()];
  const ldapsUrl = `ldaps://127.0.0.1:${ldapsPort}`;
  const ldapUrl = `ldap://127.0.0.1:${ldapPort}`;
  const slapd = startProcess('/usr/sbin/slapd', ['-f', join(dir, 'slapd.conf'), '-h', `${ldapsUrl}/ ${ldapUrl}/`, '-d', '0']);
  const stop = async (): Promise<void> => {
    await slapd.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const caFile = join(dir, 'ca.crt');
    const ca = readFileSync(caFile);
    const admin = async (): Promise<Client> => {
      const client = new Client({ url: ldapsUrl, tlsOptions: { ca: [ca] }, connectTimeout: 1000 });
      await client.bind(ADMIN_DN, ADMIN_PASSWORD);
      return client;
    };
    await waitFor(async () => {
      await (await admin()).unbind();
      return true;
    }, `slapd (${slapd.output().slice(-300)})`);
    writeFileSync(join(dir, 'content.ldif'), directoryContent());
    execFileSync('ldapadd', ['-H', ldapsUrl, '-x', '-D', ADMIN_DN, '-w', ADMIN_PASSWORD, '-f', join(dir, 'content.ldif')], {
      env: { ...process.env, LDAPTLS_CACERT: caFile },
      stdio: 'ignore',
    });
    return {
      ldapsUrl,
      ldapUrl,
      caFile,
      wrongCaFile: join(dir, 'wrong-ca.crt'),
      env: {
        PSEUDO_LDAP_URL: ldapsUrl,
        PSEUDO_LDAP_CA_FILE: caFile,
        PSEUDO_LDAP_BIND_DN: BIND_DN,
        PSEUDO_LDAP_BIND_PASSWORD: BIND_PASSWORD,
        PSEUDO_LDAP_USER_BASE: `ou=people,${BASE_DN}`,
        PSEUDO_LDAP_USER_FILTER: `(&(objectClass=inetOrgPerson)(uid={username})(memberOf=cn=pseudonymization-users,ou=groups,${BASE_DN}))`,
        PSEUDO_LDAP_ROLE_MAP: JSON.stringify(ROLE_MAP),
      },
      stop,
    };
  } catch (error) {
    const output = slapd.output();
    await stop();
    throw new Error(`slapd did not start: ${output.slice(-1500)}`, { cause: error });
  }
}
