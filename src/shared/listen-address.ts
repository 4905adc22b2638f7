import { isIP } from 'node:net';

export interface ListenAddress {
  host: string;
  port: number;
}

/** Parses `host:port`, `[v6]:port` or `:port` (all interfaces). Returns an error text on failure. */
export function parseListenAddress(value: string): ListenAddress | string {
  const text = value.trim();
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  if (!match) return `"${value}" is not host:port (e.g. 0.0.0.0:8080 or [::1]:8080)`;
  const host = match[1] ?? (match[2] === '' ? '0.0.0.0' : (match[2] ?? ''));
  const port = Number(match[3]);
  if (port > 65535) return `port ${port} is out of range (0-65535)`;
  if (match[1] !== undefined && isIP(host) !== 6) return `"${host}" is not an IPv6 address`;
  if (match[1] === undefined && isIP(host) === 0 && !/^[A-Za-z0-9.-]+$/.test(host)) {
    return `"${host}" is not an IP address or host name`;
  }
  return { host, port };
}

export function formatListenAddress(address: ListenAddress): string {
  return isIP(address.host) === 6 ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
