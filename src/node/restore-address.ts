import { isIP } from 'node:net';
import { type NetworkInterfaceInfo, networkInterfaces } from 'node:os';

/**
 * The address a node tells the server it serves restores on (`address` in the
 * heartbeat): what a `ubackup restore` anywhere in the fleet connects to.
 *
 * - `public_url` when it is set (NAT, a proxy, a name in DNS): used as it is.
 * - `listen` with a concrete host: `http://<host>:<port>`.
 * - `listen` on all interfaces (`0.0.0.0`, `::`): the host's first
 *   non-internal IPv4 address (in the order the OS lists interfaces), else
 *   its first non-internal IPv6 address, else `127.0.0.1` with a warning
 *   (only this host can restore from it: set `public_url`).
 */

export interface RestoreAddress {
  url: string;
  /** Why the address may not be reachable from other hosts; null when it is fine. */
  warning: string | null;
}

type Interfaces = NodeJS.Dict<NetworkInterfaceInfo[]>;

const ALL_INTERFACES = new Set(['0.0.0.0', '::', '[::]']);

function hostPart(host: string): string {
  return isIP(host) === 6 ? `[${host}]` : host;
}

function firstExternal(interfaces: Interfaces, family: 'IPv4' | 'IPv6'): string | null {
  for (const addresses of Object.values(interfaces)) {
    for (const address of addresses ?? []) {
      // A link-local IPv6 address needs a zone to be usable: skip it.
      if (address.internal || address.family !== family) continue;
      if (family === 'IPv6' && address.address.toLowerCase().startsWith('fe80:')) continue;
      return address.address;
    }
  }
  return null;
}

export function restoreAddress(
  listen: { host: string; port: number },
  publicUrl: string | null,
  interfaces: Interfaces = networkInterfaces(),
): RestoreAddress {
  if (publicUrl !== null) return { url: publicUrl, warning: null };
  if (!ALL_INTERFACES.has(listen.host)) {
    return { url: `http://${hostPart(listen.host)}:${listen.port}`, warning: null };
  }
  const external = firstExternal(interfaces, 'IPv4') ?? firstExternal(interfaces, 'IPv6');
  if (external !== null) return { url: `http://${hostPart(external)}:${listen.port}`, warning: null };
  return {
    url: `http://127.0.0.1:${listen.port}`,
    warning:
      `listen is ${listen.host}:${listen.port} and this host has no external network address: ` +
      'restores can only reach this node from this host; set "public_url = http://<reachable host>:<port>"',
  };
}
