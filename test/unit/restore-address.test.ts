import type { NetworkInterfaceInfo } from 'node:os';
import { describe, expect, it } from 'vitest';
import { parseNodeConfig } from '../../src/node/config.js';
import { restoreAddress } from '../../src/node/restore-address.js';
import { HeartbeatRequestSchema, HeartbeatResponseSchema } from '../../src/shared/node-protocol.js';

/** The address a node announces for restores, its config key, and the heartbeat fields that carry it. */

function nic(address: string, family: 'IPv4' | 'IPv6', internal = false): NetworkInterfaceInfo {
  return {
    address,
    family,
    internal,
    netmask: '',
    mac: '',
    cidr: null,
    ...(family === 'IPv6' ? { scopeid: 0 } : {}),
  } as NetworkInterfaceInfo;
}

const HOST = {
  lo: [nic('127.0.0.1', 'IPv4', true), nic('::1', 'IPv6', true)],
  eth0: [nic('fe80::1', 'IPv6'), nic('10.0.3.7', 'IPv4')],
  eth1: [nic('192.168.1.5', 'IPv4')],
};

describe('the restore address', () => {
  it('is public_url when set', () => {
    expect(restoreAddress({ host: '0.0.0.0', port: 8874 }, 'https://store-01.example', HOST)).toEqual({
      url: 'https://store-01.example',
      warning: null,
    });
  });

  it('is the listen address when it names a host', () => {
    expect(restoreAddress({ host: '10.9.9.9', port: 9000 }, null, HOST).url).toBe('http://10.9.9.9:9000');
    expect(restoreAddress({ host: 'fd00::5', port: 9000 }, null, HOST).url).toBe('http://[fd00::5]:9000');
  });

  it('is the first external IPv4 address when listen is on all interfaces', () => {
    expect(restoreAddress({ host: '0.0.0.0', port: 8874 }, null, HOST)).toEqual({
      url: 'http://10.0.3.7:8874',
      warning: null,
    });
    expect(restoreAddress({ host: '::', port: 8874 }, null, { eth0: [nic('2001:db8::7', 'IPv6')] }).url).toBe(
      'http://[2001:db8::7]:8874',
    );
  });

  it('falls back to loopback, with a warning, on a host without an external address', () => {
    const address = restoreAddress({ host: '0.0.0.0', port: 8874 }, null, { lo: HOST.lo });
    expect(address.url).toBe('http://127.0.0.1:8874');
    expect(address.warning).toMatch(/set "public_url/);
  });
});

describe('public_url in node.conf', () => {
  const base = '[global]\nserver_url = https://u.example:8080\nserver_root_path = /backup/\n';
  it('is read, without a trailing slash', () => {
    const result = parseNodeConfig(`${base}public_url = http://store-01.example:8874/\n`, 'node.conf', {
      hostName: 'h',
    });
    expect(result.errors).toEqual([]);
    expect(result.config?.publicUrl).toBe('http://store-01.example:8874');
    expect(parseNodeConfig(base, 'node.conf', { hostName: 'h' }).config?.publicUrl).toBeNull();
  });

  it('must be an http(s) origin', () => {
    for (const bad of ['store-01:8874', 'ftp://x', 'http://x/restore', 'http://u:p@x']) {
      const result = parseNodeConfig(`${base}public_url = ${bad}\n`, 'node.conf', { hostName: 'h' });
      expect(result.config, bad).toBeNull();
      expect(result.errors[0]?.key).toBe('public_url');
    }
  });
});

describe('heartbeat fields for restores', () => {
  const beat = {
    disk_total_bytes: 1,
    disk_free_bytes: 1,
    reserve_bytes: 0,
    paused_reserve: false,
    in_flight: [],
    bytes_per_second: 0,
    version: '0.1.0',
  };
  it('address is optional (older nodes), nullable, and an origin', () => {
    expect(HeartbeatRequestSchema.safeParse(beat).success).toBe(true);
    expect(HeartbeatRequestSchema.safeParse({ ...beat, address: null }).success).toBe(true);
    expect(HeartbeatRequestSchema.safeParse({ ...beat, address: 'http://10.0.3.7:8874' }).success).toBe(true);
    expect(HeartbeatRequestSchema.safeParse({ ...beat, address: '10.0.3.7:8874' }).success).toBe(false);
    expect(HeartbeatRequestSchema.safeParse({ ...beat, address: 'http://x:1/a?b' }).success).toBe(false);
  });
  it('the reply may carry the ticket key (older servers do not)', () => {
    const reply = {
      weight: 4,
      max_bandwidth: 0,
      paused_by_admin: false,
      lease_seconds: 60,
      heartbeat_seconds: 5,
    };
    expect(HeartbeatResponseSchema.parse(reply).ticket_public_key).toBeUndefined();
    expect(HeartbeatResponseSchema.parse({ ...reply, ticket_public_key: 'MCow' }).ticket_public_key).toBe(
      'MCow',
    );
  });
});
