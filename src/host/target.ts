// The address `ping` will send to, checked in one place before anything is
// attached: given, resolvable, of a family this host has, one host (not a
// broadcast, multicast or unspecified address), and the interface exists.
import dns from 'node:dns/promises';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { UsageError } from '../base/errors';
import { interfaceExists } from './net';

export interface PingTarget {
  address: string;
  family: 4 | 6;
}

/** Why IPv6 cannot be used on this host, or null. */
export function ipv6Unavailable(): string | null {
  if (!fs.existsSync('/proc/net/if_inet6')) return 'this kernel has no IPv6 (/proc/net/if_inet6 is missing)';
  try {
    if (fs.readFileSync('/proc/sys/net/ipv6/conf/all/disable_ipv6', 'utf8').trim() === '1') return 'IPv6 is disabled here (net.ipv6.conf.all.disable_ipv6=1)';
  } catch {
    // no sysctl: IPv6 as the kernel has it
  }
  return null;
}

function ipv4Number(a: string): number {
  return a.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

/** The directed broadcast addresses of this namespace's IPv4 networks (from the interfaces' netmasks). */
function localBroadcasts(): Set<string> {
  const out = new Set<string>();
  for (const addrs of Object.values(os.networkInterfaces()))
    for (const a of addrs ?? []) {
      if (a.family !== 'IPv4' || a.netmask === '255.255.255.255' || a.netmask === '255.255.255.254') continue;
      const bcast = (ipv4Number(a.address) | (~ipv4Number(a.netmask) >>> 0)) >>> 0;
      out.add([24, 16, 8, 0].map((s) => (bcast >>> s) & 255).join('.'));
    }
  return out;
}

/** Why this address is not one host to ping, or null. */
export function notUnicast(address: string, family: 4 | 6): string | null {
  if (family === 4) {
    const first = Number(address.split('.')[0]);
    if (address === '0.0.0.0') return 'the unspecified address';
    if (address === '255.255.255.255') return 'the broadcast address';
    if (first >= 224 && first <= 239) return 'a multicast address';
    if (first >= 240) return 'a reserved (class E) address';
    if (localBroadcasts().has(address)) return 'the broadcast address of a local network';
    return null;
  }
  const lower = address.toLowerCase();
  if (net.isIPv6(lower) && /^ff[0-9a-f]{2}:/.test(lower)) return 'a multicast address';
  if (/^[0:]+$/.test(lower)) return 'the unspecified address';
  return null;
}

/**
 * Resolves and checks `target` (a host name or an IP literal). `family` forces
 * IPv4 or IPv6 (-4/-6), as ping does; otherwise IPv4 is preferred for names.
 * Every refusal is a UsageError of one line naming what was wrong.
 */
export async function resolvePingTarget(target: string, opts: { family?: 4 | 6; iface?: string } = {}): Promise<PingTarget> {
  const flag = opts.family ? ` -${opts.family}` : '';
  const what = `ping${flag} ${target}`;
  if (!target.trim()) throw new UsageError('ping: the target is empty; give a host name or an IP address');
  if (opts.iface !== undefined && !interfaceExists(opts.iface))
    throw new UsageError(`--interface: no interface '${opts.iface}' in this network namespace (see ip link)`);
  let address = target;
  let family = net.isIP(target) as 0 | 4 | 6;
  if (family && opts.family && family !== opts.family)
    throw new UsageError(`${what}: ${target} is an IPv${family} address; drop -${opts.family} or give an IPv${opts.family} address`);
  if (!family) {
    try {
      const r = await dns.lookup(target, { family: opts.family ?? 0, verbatim: false });
      address = r.address;
      family = r.family as 4 | 6;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? String(e);
      if (opts.family) throw new UsageError(`${what}: ${target} has no IPv${opts.family} address (${code}); drop -${opts.family} or give another name`);
      throw new UsageError(`${what}: cannot resolve it (${code}); give a host name or an IP address`);
    }
  }
  const fam: 4 | 6 = family === 6 ? 6 : 4;
  if (fam === 6) {
    const why = ipv6Unavailable();
    if (why) throw new UsageError(`${what}: ${address} is an IPv6 address, but ${why}`);
  }
  const bad = notUnicast(address, fam);
  if (bad) throw new UsageError(`${what}: ${address} is ${bad}; jitterscope ping needs the unicast address of one host`);
  return { address, family: fam };
}
