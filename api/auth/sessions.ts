/**
 * Session tokens for people: after a directory sign-in, a short-lived JWT (HS256, via `jose`) that
 * carries the user name and roles. The signing key is derived from the active keyring version
 * (HKDF, its own label) and the token names that version in `kid`, so every process and Lambda
 * instance can verify it without another secret; destroying a key version ends its sessions.
 * Group changes in the directory take effect at the next sign-in.
 */
import { randomUUID } from 'node:crypto';
import { decodeProtectedHeader, jwtVerify, SignJWT } from 'jose';
import { AuthError } from '../errors.ts';
import type { Keyring } from '../keyring/keyring.ts';
import { ROLES, type Principal, type Role } from './roles.ts';

const ISSUER = 'pseudonymization-api';
/** Seconds two clocks (the issuing and the verifying process) may disagree by. */
const CLOCK_SKEW_SECONDS = 5;

export interface IssuedSession {
  readonly token: string;
  readonly expiresAt: string;
}

export class SessionTokens {
  constructor(
    private readonly keyring: Keyring,
    private readonly ttlSeconds: number,
  ) {}

  async issue(username: string, roles: readonly Role[]): Promise<IssuedSession> {
    const key = this.keyring.active();
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ roles: [...roles] })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: String(key.version) })
      .setSubject(username)
      .setIssuer(ISSUER)
      .setAudience(ISSUER)
      .setIssuedAt(now)
      .setExpirationTime(now + this.ttlSeconds)
      .setJti(randomUUID())
      .sign(key.sessionKey());
    return { token, expiresAt: new Date((now + this.ttlSeconds) * 1000).toISOString() };
  }

  async verify(token: string): Promise<Principal> {
    const invalid = new AuthError('unauthenticated', 'the session token is not valid or has expired: sign in again');
    let version: number;
    try {
      version = Number(decodeProtectedHeader(token).kid);
    } catch {
      throw invalid;
    }
    const lookup = Number.isInteger(version) ? this.keyring.lookup(version) : { kind: 'unknown' as const };
    if (lookup.kind !== 'usable') throw invalid;
    try {
      // jose checks `iat` only with a maximum age: with it, a token issued in the future (beyond the skew) or older than a session lives is refused.
      const { payload } = await jwtVerify(token, lookup.key.sessionKey(), {
        issuer: ISSUER,
        audience: ISSUER,
        algorithms: ['HS256'],
        clockTolerance: CLOCK_SKEW_SECONDS,
        maxTokenAge: this.ttlSeconds,
        requiredClaims: ['sub', 'exp', 'iat'],
      });
      const roles = Array.isArray(payload.roles) ? payload.roles.filter((r): r is Role => (ROLES as readonly unknown[]).includes(r)) : [];
      return { kind: 'person', id: payload.sub!, name: payload.sub!, roles: new Set(roles), contexts: undefined };
    } catch {
      throw invalid;
    }
  }
}
