/**
 * The client's address, for the sign-in throttle and the audit entries. Without a trusted-proxy
 * setting it is the peer the transport saw (the TCP socket; API Gateway's `sourceIp` on Lambda) and
 * X-Forwarded-For is ignored: anyone can write that header. Behind a load balancer every client
 * would then share the balancer's address, so PSEUDO_TRUSTED_PROXIES says which hops may speak for
 * the client:
 *
 *   a hop count N   the peer and the N-1 hops before it are proxies: the client is the Nth address
 *                   from the right of X-Forwarded-For (peer appended)
 *   CIDRs / IPs     addresses in these ranges are proxies: the client is the rightmost address, peer
 *                   included, that is not one of them
 *
 * Only a well-formed IP address is ever returned (a header entry that is not one leaves the nearest
 * proxy's address), so the value is bounded before it reaches a log line, an audit entry or a key.
 */
import { BlockList, isIP } from 'node:net';
import type { TrustedProxies } from '../config/config.ts';

const MAPPED_IPV4 = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;

/** An address as one canonical text (IPv4-mapped IPv6 as plain IPv4), or undefined when it is not an IP address. */
function canonical(address: string | undefined): string | undefined {
  const trimmed = address?.trim() ?? '';
  const text = MAPPED_IPV4.exec(trimmed)?.[1] ?? trimmed;
  return isIP(text) === 0 ? undefined : text.toLowerCase();
}

export type ClientAddressResolver = (peer: string | undefined, forwardedFor: string | undefined) => string | undefined;

/** Builds the resolver once from the configuration (the CIDR list is compiled into a BlockList). */
export function clientAddressResolver(trusted: TrustedProxies): ClientAddressResolver {
  if (trusted.kind === 'none') return (peer) => canonical(peer);
  const proxies = new BlockList();
  if (trusted.kind === 'ranges') {
    for (const range of trusted.ranges) {
      const [network, prefix] = range.split('/');
      const family = isIP(network ?? '') === 6 ? 'ipv6' : 'ipv4';
      if (prefix === undefined) proxies.addAddress(network!, family);
      else proxies.addSubnet(network!, Number(prefix), family);
    }
  }
  const isProxy = (address: string, hopsFromPeer: number): boolean =>
    trusted.kind === 'hops' ? hopsFromPeer < trusted.hops : proxies.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
  return (peer, forwardedFor) => {
    let client = canonical(peer);
    if (client === undefined) return undefined;
    // Right to left: the peer, then what each proxy says it saw. Stop at the first hop that is not a trusted proxy.
    const chain = (forwardedFor ?? '').split(',').reverse();
    for (let hop = 0; isProxy(client, hop) && hop < chain.length; hop++) {
      const before = canonical(chain[hop]);
      if (before === undefined) break;
      client = before;
    }
    return client;
  };
}
