/**
 * People sign in with their corporate directory identity (OpenLDAP or Active Directory), by
 * search-then-bind: the service's bind account searches the user under the user base with the
 * configured filter, then the service binds as the DN the directory returned, with the password
 * given. No DN is ever built from input; the user name goes into the filter escaped per RFC 4515
 * (ldapts `Filter.escape`), so `*`, `(`, `)`, `\` and NUL lose their filter meaning.
 *
 * Groups: OpenLDAP's memberOf attribute on the user entry, or for Active Directory every group the
 * user is in, nested ones included, with the LDAP_MATCHING_RULE_IN_CHAIN rule
 * (member:1.2.840.113556.1.4.1941:=<user DN>). Groups map to roles by configuration.
 *
 * The connection is TLS (ldaps:// or StartTLS) verified against the configured CA; plain LDAP only
 * when the configuration allows it explicitly.
 */
import { readFile } from 'node:fs/promises';
import type { ConnectionOptions } from 'node:tls';
import { Client, Filter, InvalidCredentialsError } from 'ldapts';
import type { BindPasswordSource, LdapConfig } from '../config/config.ts';
import { normalizeDn } from '../config/config.ts';
import { AuthError, DirectoryError } from '../errors.ts';
import { SecretsManagerSecret } from '../storage/documents.ts';
import type { Role } from './roles.ts';
import { normalizeUserName } from './throttle.ts';

export interface DirectoryPerson {
  /** The person's name as the directory stores it (PSEUDO_LDAP_USERNAME_ATTRIBUTE, else the DN): never the typed spelling. */
  readonly username: string;
  readonly dn: string;
  readonly roles: readonly Role[];
}

/** Why a sign-in failed, for the audit log only; the caller always gets one generic 401. */
export class SignInRejected extends AuthError {
  constructor(
    readonly reason: 'invalid-input' | 'unknown-user' | 'ambiguous-user' | 'invalid-credentials',
    /** The directory's name for the person, when one entry matched (a wrong password): for the throttle and the audit entry. */
    readonly identity?: string,
  ) {
    super('unauthenticated', 'the user name or password is not correct');
  }
}

const MAX_USERNAME = 256;
const MAX_PASSWORD = 1024;
const AD_IN_CHAIN = '1.2.840.113556.1.4.1941';
const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO|ALTNAME|TLS|SSL|ERR_SSL/i;

export class LdapDirectory {
  private bindPassword: string | undefined;

  private constructor(
    private readonly config: LdapConfig,
    private readonly ca: Buffer | undefined,
  ) {}

  /** Reads the CA and the bind password once (a Secrets Manager call per sign-in would make its quota the limit). */
  static async open(config: LdapConfig): Promise<LdapDirectory> {
    let ca: Buffer | undefined;
    if (config.caFile) {
      try {
        ca = await readFile(config.caFile);
      } catch {
        throw new DirectoryError(`PSEUDO_LDAP_CA_FILE: cannot read ${config.caFile}`);
      }
    }
    const directory = new LdapDirectory(config, ca);
    directory.bindPassword = await readBindPassword(config.bindPassword, config.bindDn);
    return directory;
  }

  async authenticate(username: string, password: string): Promise<DirectoryPerson> {
    // An empty password would be an unauthenticated bind (RFC 4513 5.1.2), which succeeds for any DN.
    if (!isAcceptable(username, MAX_USERNAME) || !isAcceptable(password, MAX_PASSWORD)) throw new SignInRejected('invalid-input');
    const filter = this.config.userFilter.replaceAll('{username}', () => Filter.escape(username));
    // TLS options belong to the constructor for ldaps:// only: given there for ldap://, ldapts breaks the StartTLS upgrade.
    const client = new Client({
      url: this.config.url,
      timeout: this.config.timeoutMs,
      connectTimeout: this.config.timeoutMs,
      ...(this.config.startTls ? {} : { tlsOptions: this.tlsOptions() }),
    });
    let phase: 'connect' | 'service-bind' | 'search' | 'user-bind' = 'connect';
    let identity: string | undefined;
    try {
      if (this.config.startTls) await client.startTLS(this.tlsOptions());
      phase = 'service-bind';
      await this.serviceBind(client);
      phase = 'search';
      const attributes = [this.config.usernameAttribute, ...(this.config.groups.mode === 'memberOf' ? ['memberOf'] : [])];
      const { searchEntries } = await client.search(this.config.userBase, { scope: 'sub', filter, attributes, sizeLimit: 2 });
      if (searchEntries.length === 0) throw new SignInRejected('unknown-user');
      if (searchEntries.length > 1) throw new SignInRejected('ambiguous-user');
      const entry = searchEntries[0]!;
      // The directory matches ` steve`, `ｓｔｅｖｅ` or `ſteve` as steve: from here on the person is named as the entry names them.
      const attribute = this.config.usernameAttribute.toLowerCase();
      const names = Object.entries(entry).find(([name]) => name.toLowerCase() === attribute)?.[1];
      identity = identityOf(values(names), username) ?? entry.dn;
      const groups = this.config.groups.mode === 'memberOf' ? values(entry.memberOf) : await this.nestedGroups(client, this.config.groups.base, entry.dn);
      phase = 'user-bind';
      await client.bind(entry.dn, password);
      const roles = new Set<Role>();
      for (const group of groups) for (const role of this.config.roleMap.get(normalizeDn(group)) ?? []) roles.add(role);
      return { username: identity, dn: entry.dn, roles: [...roles] };
    } catch (error) {
      throw this.explain(error, phase, identity);
    } finally {
      await client.unbind().catch(() => undefined);
    }
  }

  private async serviceBind(client: Client): Promise<void> {
    try {
      await client.bind(this.config.bindDn, this.bindPassword);
    } catch (error) {
      // The bind password may have been rotated in its secret: read it again once.
      if (!(error instanceof InvalidCredentialsError) || this.config.bindPassword.kind === 'env') throw error;
      this.bindPassword = await readBindPassword(this.config.bindPassword, this.config.bindDn);
      await client.bind(this.config.bindDn, this.bindPassword);
    }
  }

  private async nestedGroups(client: Client, base: string, userDn: string): Promise<string[]> {
    const { searchEntries } = await client.search(base, { scope: 'sub', filter: `(member:${AD_IN_CHAIN}:=${Filter.escape(userDn)})`, attributes: ['dn'] });
    return searchEntries.map((e) => e.dn);
  }

  private tlsOptions(): ConnectionOptions {
    return { minVersion: 'TLSv1.2', rejectUnauthorized: true, ...(this.ca ? { ca: [this.ca] } : {}) };
  }

  /** Sign-in failures stay 401; anything about the directory itself becomes a 503 that says what to check. */
  private explain(error: unknown, phase: string, identity: string | undefined): Error {
    if (error instanceof SignInRejected) return error;
    if (error instanceof InvalidCredentialsError) {
      return phase === 'user-bind' ? new SignInRejected('invalid-credentials', identity) : new DirectoryError('the directory rejected the service bind account (PSEUDO_LDAP_BIND_DN / its password)');
    }
    const code = typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : '';
    if (TLS_CODES.test(code)) {
      return new DirectoryError(`the directory's TLS certificate is not trusted (${code || 'TLS error'}): check PSEUDO_LDAP_CA_FILE and the host name in PSEUDO_LDAP_URL`);
    }
    if (code) return new DirectoryError(`cannot reach the directory (${code})`);
    const name = error instanceof Error ? error.name : 'error';
    return new DirectoryError(`the directory failed during ${phase} (${name})`);
  }
}

function isAcceptable(text: string, max: number): boolean {
  return typeof text === 'string' && text.length > 0 && text.length <= max && !text.includes('\u0000') && text.isWellFormed();
}

/**
 * Of the entry's names (an attribute may hold several), the one the typed name stands for once both
 * are normalised, else the first. Undefined when the entry has none.
 */
function identityOf(names: readonly string[], typed: string): string | undefined {
  const wanted = normalizeUserName(typed);
  return names.find((name) => normalizeUserName(name) === wanted) ?? names[0];
}

function values(attribute: unknown): string[] {
  if (attribute === undefined) return [];
  const list = Array.isArray(attribute) ? attribute : [attribute];
  return list.map((v) => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v)));
}

async function readBindPassword(source: BindPasswordSource, bindDn: string): Promise<string> {
  if (source.kind === 'env') return source.value;
  if (source.kind === 'file') {
    try {
      return (await readFile(source.path, 'utf8')).trim();
    } catch {
      throw new DirectoryError(`PSEUDO_LDAP_BIND_PASSWORD_FILE: cannot read ${source.path}`);
    }
  }
  const text = await new SecretsManagerSecret({ ...source, purpose: 'LDAP bind password' }).read();
  if (text === undefined) throw new DirectoryError(`PSEUDO_LDAP_BIND_PASSWORD_SECRET_ID: the secret ${source.secretId} does not exist`);
  return passwordFromSecret(text, bindDn);
}

/**
 * The secret holds the password as plain text, as JSON {"password": "..."}, or in the shape EMR's
 * LDAP integration reads (BindCredentialsARN): one pair {"<bind DN>": "<password>"}, so one secret
 * can serve the cluster and this service.
 */
export function passwordFromSecret(text: string, bindDn: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return text;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return text;
  const entries = Object.entries(parsed);
  const password = entries.find(([key]) => key === 'password') ?? (entries.length === 1 && normalizeDn(entries[0]![0]) === normalizeDn(bindDn) ? entries[0] : undefined);
  if (password && typeof password[1] === 'string') return password[1];
  throw new DirectoryError('PSEUDO_LDAP_BIND_PASSWORD_SECRET_ID: the secret is JSON but has neither "password" nor one "<bind DN>": "<password>" pair');
}
