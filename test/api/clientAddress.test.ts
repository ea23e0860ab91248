/**
 * The client address behind proxies (api/http/clientAddress.ts), rule by rule; the throttle behind a
 * trusted hop is tested over HTTP with the directory in test/auth/ldap.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../api/config/config.ts';
import { clientAddressResolver } from '../../api/http/clientAddress.ts';

const resolverFor = (setting?: string) => clientAddressResolver(loadConfig(setting === undefined ? {} : { PSEUDO_TRUSTED_PROXIES: setting }).trustedProxies);

describe('the client address', () => {
  it('without a trusted-proxy setting is the peer, whatever X-Forwarded-For says', () => {
    const resolve = resolverFor();
    expect(resolve('10.0.0.5', '198.51.100.7')).toBe('10.0.0.5');
    expect(resolve('::ffff:127.0.0.1', undefined)).toBe('127.0.0.1');
    expect(resolve(undefined, '198.51.100.7')).toBeUndefined();
  });

  it('behind N trusted hops is the Nth address from the right (the peer counted), never one a client wrote further left', () => {
    expect(resolverFor('1')('10.0.0.5', '6.6.6.6, 198.51.100.7')).toBe('198.51.100.7');
    expect(resolverFor('2')('10.0.0.5', '6.6.6.6, 198.51.100.7, 10.0.0.9')).toBe('198.51.100.7');
    // Fewer entries than hops: the leftmost one there is.
    expect(resolverFor('3')('10.0.0.5', '198.51.100.7')).toBe('198.51.100.7');
    expect(resolverFor('1')('10.0.0.5', undefined)).toBe('10.0.0.5');
  });

  it('with proxy ranges is the rightmost address outside them', () => {
    const resolve = resolverFor('10.0.0.0/8, 192.168.1.7, fd00::/8');
    expect(resolve('10.1.2.3', '6.6.6.6, 198.51.100.7, 192.168.1.7')).toBe('198.51.100.7');
    expect(resolve('fd00::1', '2001:db8::42')).toBe('2001:db8::42');
    // A peer outside the ranges is the client itself: its header is not believed.
    expect(resolve('203.0.113.9', '198.51.100.7')).toBe('203.0.113.9');
  });

  it('is always a well-formed IP address: a header entry that is not one leaves the nearest proxy', () => {
    const resolve = resolverFor('1');
    for (const junk of ['jane@example.com', 'x'.repeat(100_000), 'unknown', '', '1.2.3.4.5']) expect(resolve('10.0.0.5', junk)).toBe('10.0.0.5');
  });

  it('refuses a setting that is neither a hop count nor addresses, naming the key', () => {
    for (const bad of ['0', '17', 'loadbalancer', '10.0.0.0/33', '10.0.0.0/8,', 'fd00::/129']) expect(() => resolverFor(bad)).toThrow(/^PSEUDO_TRUSTED_PROXIES: /);
  });
});
