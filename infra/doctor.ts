/**
 * `infra doctor`: the checks the EMR LDAP documentation asks admins to make by hand, in order, each
 * failure explained in plain words: the name resolves, the port answers, TLS verifies with the CA
 * given to EMR, the bind account can bind, a named user is found under the user search base through
 * the access filter, and their groups are listed. Later checks need the earlier ones, so the run
 * stops at the first failure.
 */
import { lookup } from 'node:dns/promises';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { Client, Filter, InvalidCredentialsError } from 'ldapts';
import type { LdapSettings } from './config.ts';

export interface Check {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface DoctorInput {
  readonly ldap: LdapSettings;
  readonly bindPassword: string;
  readonly caPem: Buffer;
  readonly user: string;
  readonly timeoutMs?: number;
}

const codeOf = (error: unknown): string => (typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : '');

export async function doctor(input: DoctorInput): Promise<Check[]> {
  const { ldap, caPem, user } = input;
  const timeoutMs = input.timeoutMs ?? 5000;
  const url = new URL(ldap.url);
  const host = url.hostname;
  const port = Number(url.port || 636);
  const checks: Check[] = [];
  const pass = (name: string, detail: string) => checks.push({ name, ok: true, detail });
  const fail = (name: string, detail: string) => {
    checks.push({ name, ok: false, detail });
    return checks;
  };

  // 1. DNS
  try {
    const addresses = await lookup(host, { all: true });
    pass('DNS', `${host} resolves to ${addresses.map((a) => a.address).join(', ')}`);
  } catch (error) {
    return fail('DNS', `${host} does not resolve (${codeOf(error) || 'lookup failed'}). Check the host name in ldap.url, and that the cluster's VPC DNS can resolve it.`);
  }

  // 2. TCP
  try {
    await new Promise<void>((resolve, reject) => {
      const socket = netConnect({ host, port, timeout: timeoutMs });
      socket.once('connect', () => {
        socket.destroy();
        resolve();
      });
      socket.once('timeout', () => {
        socket.destroy();
        reject(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' }));
      });
      socket.once('error', reject);
    });
    pass('TCP', `${host}:${port} accepts connections`);
  } catch (error) {
    const code = codeOf(error);
    return fail(
      'TCP',
      code === 'ECONNREFUSED'
        ? `nothing listens on ${host}:${port} (connection refused). Check the port in ldap.url and that the directory serves LDAPS there.`
        : `no answer from ${host}:${port} within ${timeoutMs / 1000} s (${code || 'no connection'}). A firewall or security group probably drops the traffic: the cluster's nodes must reach port ${port}.`,
    );
  }

  // 3. TLS with the CA given to EMR
  let certificate: PeerCertificate;
  try {
    certificate = await new Promise<PeerCertificate>((resolve, reject) => {
      const socket = tlsConnect({ host, port, ca: [caPem], servername: /^[\d.]+$/.test(host) ? undefined : host, timeout: timeoutMs, minVersion: 'TLSv1.2' });
      socket.once('secureConnect', () => {
        const peer = socket.getPeerCertificate();
        socket.destroy();
        resolve(peer);
      });
      socket.once('timeout', () => {
        socket.destroy();
        reject(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' }));
      });
      socket.once('error', reject);
    });
  } catch (error) {
    const code = codeOf(error);
    const why: Record<string, string> = {
      SELF_SIGNED_CERT_IN_CHAIN: 'the server certificate is not signed by the CA in ldap.caFile',
      UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the server certificate is not signed by the CA in ldap.caFile (or the server does not send its intermediate certificates)',
      UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'the server certificate is not signed by the CA in ldap.caFile',
      DEPTH_ZERO_SELF_SIGNED_CERT: 'the server uses a self-signed certificate that is not the one in ldap.caFile',
      ERR_TLS_CERT_ALTNAME_INVALID: `the server certificate does not name ${host}: use the host name the certificate was issued for`,
      CERT_HAS_EXPIRED: 'the server certificate has expired',
    };
    return fail('TLS', `${why[code] ?? `the TLS handshake failed (${code || 'error'})`}. EMR verifies the directory with the certificate in BindCertificateARN, so it would fail the same way.`);
  }
  const daysLeft = Math.floor((Date.parse(certificate.valid_to) - Date.now()) / 86_400_000);
  pass('TLS', `certificate for ${commonName(certificate.subject.CN) ?? host} issued by ${commonName(certificate.issuer.CN) ?? 'the CA'} verifies with ldap.caFile; expires in ${daysLeft} days${daysLeft < 30 ? ' (renew it soon)' : ''}`);

  // 4-6. Bind, user, groups
  const client = new Client({ url: ldap.url, timeout: timeoutMs, connectTimeout: timeoutMs, tlsOptions: { ca: [caPem], minVersion: 'TLSv1.2' } });
  try {
    try {
      await client.bind(ldap.bindDn, input.bindPassword);
      pass('bind', `bound as ${ldap.bindDn}`);
    } catch (error) {
      return fail(
        'bind',
        error instanceof InvalidCredentialsError
          ? `the directory refused ${ldap.bindDn} with this password (invalid credentials). Check ldap.bindDn and the password EMR gets from BindCredentialsARN.`
          : `binding as ${ldap.bindDn} failed (${error instanceof Error ? error.name : 'error'}).`,
      );
    }
    const attribute = ldap.serverType === 'ActiveDirectory' ? 'sAMAccountName' : 'uid';
    const filter = `(&${ldap.accessFilter}(${attribute}=${Filter.escape(user)}))`;
    const { searchEntries } = await client.search(ldap.userSearchBase, { scope: 'sub', filter, attributes: ['memberOf'], sizeLimit: 2 });
    if (searchEntries.length !== 1) {
      return fail(
        'user',
        searchEntries.length === 0
          ? `no entry with ${attribute}=${user} under ${ldap.userSearchBase} passes the access filter ${ldap.accessFilter}: the user is missing, outside the user search base, or filtered out, and could not sign in to the cluster.`
          : `more than one entry with ${attribute}=${user} under ${ldap.userSearchBase}: sign-in would be ambiguous.`,
      );
    }
    const entry = searchEntries[0]!;
    pass('user', `${user} is ${entry.dn}`);
    let groups = (Array.isArray(entry.memberOf) ? entry.memberOf : entry.memberOf ? [entry.memberOf] : []).map(String);
    if (groups.length === 0) {
      const memberFilter = `(|(member=${Filter.escape(entry.dn)})(uniqueMember=${Filter.escape(entry.dn)})(memberUid=${Filter.escape(user)}))`;
      groups = (await client.search(ldap.groupSearchBase, { scope: 'sub', filter: memberFilter, attributes: ['dn'] })).searchEntries.map((g) => g.dn);
    }
    const inBase = groups.filter((g) => g.toLowerCase().endsWith(ldap.groupSearchBase.toLowerCase()));
    pass('groups', inBase.length > 0 ? `${user} is in ${inBase.join('; ')}` : `${user} is in no group under ${ldap.groupSearchBase}: sign-in works, but group-based policies (Ranger) will not match them`);
    return checks;
  } catch (error) {
    return fail('search', `searching the directory failed (${error instanceof Error ? error.name : 'error'}): check ldap.userSearchBase, ldap.groupSearchBase and that ${ldap.bindDn} may read them.`);
  } finally {
    await client.unbind().catch(() => undefined);
  }
}

/** A certificate name field as Node gives it: one value, several, or none. */
function commonName(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}
