import { type KeyObject, sign } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isSafeComponent } from '../../src/shared/path-component.js';
import {
  exportPrivateKey,
  exportPublicKey,
  generateTicketKeys,
  importPrivateKey,
  importPublicKey,
  MAX_TICKET_CHARS,
  signTicket,
  TICKET_VERSION,
  type TicketClaims,
  verifyTicket,
} from '../../src/shared/ticket.js';

// Frozen time: verifyTicket gets `nowMs` from the test, never from a clock.
const NOW = Date.UTC(2026, 10, 20, 4, 0, 0);
const MINUTE = 60_000;

const keys = generateTicketKeys();
const otherKeys = generateTicketKeys();

const CLAIMS: TicketClaims = {
  v: TICKET_VERSION,
  purpose: 'pull',
  job_id: 42,
  backup_id: 4242,
  server_id: '011111',
  type: 'mysql',
  instance: '3306',
  filename: 'mysql_3306_20261120_040000.tar.gz',
  size: 104_857_600,
  blake3: 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262',
  node: 'store-01',
  exp: NOW + 10 * MINUTE,
};

/** Signs any bytes the way signTicket does, without its validation of the claims. */
function signRaw(payload: Buffer, privateKey: KeyObject = keys.privateKey): string {
  return `${payload.toString('base64url')}.${sign(null, payload, privateKey).toString('base64url')}`;
}

const signJson = (value: unknown): string => signRaw(Buffer.from(JSON.stringify(value), 'utf8'));

function parts(ticket: string): [string, string] {
  const [payload, signature] = ticket.split('.');
  return [payload as string, signature as string];
}

describe('signTicket / verifyTicket', () => {
  it('round-trips a pull ticket', () => {
    const ticket = signTicket(CLAIMS, keys.privateKey);
    expect(ticket).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(verifyTicket(ticket, keys.publicKey, NOW)).toEqual({ ok: true, claims: CLAIMS });
  });

  it('round-trips a restore ticket without a job', () => {
    const claims: TicketClaims = { ...CLAIMS, purpose: 'restore', job_id: null };
    expect(verifyTicket(signTicket(claims, keys.privateKey), keys.publicKey, NOW)).toEqual({
      ok: true,
      claims,
    });
  });

  it('keeps names exactly, unicode, spaces and quotes included', () => {
    const claims: TicketClaims = { ...CLAIMS, instance: '主库 "A"', filename: 'b ack·up 备份.xb' };
    expect(verifyTicket(signTicket(claims, keys.privateKey), keys.publicKey, NOW)).toEqual({
      ok: true,
      claims,
    });
  });

  it('refuses to sign invalid claims', () => {
    expect(() => signTicket({ ...CLAIMS, filename: '../etc/passwd' }, keys.privateKey)).toThrow();
    expect(() => signTicket({ ...CLAIMS, blake3: 'ABC' }, keys.privateKey)).toThrow();
  });

  describe('expiry', () => {
    it.each([
      ['exp = now', NOW, 'expired'],
      ['exp one ms before now', NOW - 1, 'expired'],
      ['exp long ago', NOW - 365 * 24 * 60 * MINUTE, 'expired'],
      ['exp at the epoch', 0, 'expired'],
    ])('%s → expired', (_name, exp) => {
      expect(verifyTicket(signTicket({ ...CLAIMS, exp }, keys.privateKey), keys.publicKey, NOW)).toEqual({
        ok: false,
        problem: 'expired',
      });
    });

    it('exp one ms after now → valid', () => {
      expect(
        verifyTicket(signTicket({ ...CLAIMS, exp: NOW + 1 }, keys.privateKey), keys.publicKey, NOW).ok,
      ).toBe(true);
    });
  });

  describe('tampering → bad_signature', () => {
    const ticket = signTicket(CLAIMS, keys.privateKey);
    const [payload, signature] = parts(ticket);

    it('a flipped byte anywhere in the payload', () => {
      const bytes = Buffer.from(payload, 'base64url');
      for (let i = 0; i < bytes.length; i++) {
        const tampered = Buffer.from(bytes);
        tampered[i] = (tampered[i] as number) ^ 0x01;
        const forged = `${tampered.toString('base64url')}.${signature}`;
        expect(verifyTicket(forged, keys.publicKey, NOW), `byte ${i}`).toEqual({
          ok: false,
          problem: 'bad_signature',
        });
      }
    });

    it('a flipped byte anywhere in the signature', () => {
      const bytes = Buffer.from(signature, 'base64url');
      for (let i = 0; i < bytes.length; i++) {
        const tampered = Buffer.from(bytes);
        tampered[i] = (tampered[i] as number) ^ 0x80;
        const forged = `${payload}.${tampered.toString('base64url')}`;
        expect(verifyTicket(forged, keys.publicKey, NOW), `byte ${i}`).toEqual({
          ok: false,
          problem: 'bad_signature',
        });
      }
    });

    it.each<[string, Partial<TicketClaims>]>([
      ['another file', { filename: 'mysql_3306_20261119_040000.tar.gz' }],
      ['another host', { server_id: '011112' }],
      ['a later expiry', { exp: NOW + 24 * 60 * MINUTE }],
      ['another node', { node: 'store-02' }],
      ['a restore instead of a pull', { purpose: 'restore' }],
    ])('the claims changed to %s and re-encoded with the old signature', (_name, change) => {
      const json = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
      const edited = Buffer.from(JSON.stringify({ ...json, ...change }), 'utf8').toString('base64url');
      expect(verifyTicket(`${edited}.${signature}`, keys.publicKey, NOW)).toEqual({
        ok: false,
        problem: 'bad_signature',
      });
    });

    it('a signature from another key', () => {
      const forged = signTicket(CLAIMS, otherKeys.privateKey);
      expect(verifyTicket(forged, keys.publicKey, NOW)).toEqual({ ok: false, problem: 'bad_signature' });
    });

    it('the signature of another ticket', () => {
      const [, otherSignature] = parts(signTicket({ ...CLAIMS, filename: 'other.tar.gz' }, keys.privateKey));
      expect(verifyTicket(`${payload}.${otherSignature}`, keys.publicKey, NOW)).toEqual({
        ok: false,
        problem: 'bad_signature',
      });
    });

    it.each([
      ['a truncated signature', `${payload}.${signature.slice(0, -2)}`],
      ['a lengthened signature', `${payload}.${signature}AA`],
      ['a one-character signature', `${payload}.A`],
      ['a payload and signature that are well-formed but unsigned', 'abc.def'],
    ])('%s', (_name, forged) => {
      expect(verifyTicket(forged, keys.publicKey, NOW)).toEqual({ ok: false, problem: 'bad_signature' });
    });

    it('checks the signature before the expiry: a forged expired ticket is bad_signature', () => {
      const [, otherSignature] = parts(signTicket(CLAIMS, otherKeys.privateKey));
      const expired = parts(signTicket({ ...CLAIMS, exp: NOW - 1 }, keys.privateKey))[0];
      expect(verifyTicket(`${expired}.${otherSignature}`, keys.publicKey, NOW)).toEqual({
        ok: false,
        problem: 'bad_signature',
      });
    });
  });

  describe('garbage → malformed', () => {
    const ticket = signTicket(CLAIMS, keys.privateKey);
    const [payload, signature] = parts(ticket);

    it.each([
      ['empty', ''],
      ['no dot', `${payload}${signature}`],
      ['a lone dot', '.'],
      ['empty payload', `.${signature}`],
      ['empty signature', `${payload}.`],
      ['three parts', `${payload}.${signature}.${signature}`],
      ['three parts, last empty', `${ticket}.`],
      ['standard base64 characters (+ /)', `${payload}.${signature.slice(0, -2)}+/`],
      ['base64 padding', `${payload}=.${signature}`],
      ['a space', `${payload} .${signature}`],
      ['surrounding whitespace', ` ${ticket}\n`],
      ['a NUL', `${payload}\u0000.${signature}`],
      ['non-ASCII', `${payload}é.${signature}`],
      ['a Bearer prefix', `Bearer ${ticket}`],
      ['5000 characters', `${'A'.repeat(2500)}.${'A'.repeat(2499)}`],
      ['one character over the limit', `${'A'.repeat(MAX_TICKET_CHARS - 100)}.${'A'.repeat(100)}`],
    ])('%s', (_name, garbage) => {
      expect(verifyTicket(garbage, keys.publicKey, NOW)).toEqual({ ok: false, problem: 'malformed' });
    });

    it('never throws, whatever the string', () => {
      fc.assert(
        fc.property(
          fc.oneof(
            fc.string({ maxLength: 5000, unit: 'binary' }),
            fc.stringMatching(/^[A-Za-z0-9_.-]{0,200}$/),
            fc
              .tuple(fc.uint8Array({ maxLength: 600 }), fc.uint8Array({ maxLength: 80 }))
              .map(
                ([p, s]) => `${Buffer.from(p).toString('base64url')}.${Buffer.from(s).toString('base64url')}`,
              ),
          ),
          (garbage) => {
            const check = verifyTicket(garbage, keys.publicKey, NOW);
            expect(check.ok).toBe(false);
          },
        ),
      );
    });
  });

  describe('correctly signed, invalid claims → invalid_claims', () => {
    const valid = { ...CLAIMS } as Record<string, unknown>;
    const without = (field: keyof TicketClaims): Record<string, unknown> => {
      const copy = { ...valid };
      delete copy[field];
      return copy;
    };

    it('the hand-signing helper signs exactly as signTicket does', () => {
      expect(signJson(valid)).toBe(signTicket(CLAIMS, keys.privateKey));
    });

    it.each<[string, unknown]>([
      ['an extra field', { ...valid, admin: true }],
      [
        'an extra __proto__ field',
        JSON.parse(`{"__proto__":{"admin":true},${JSON.stringify(valid).slice(1)}`),
      ],
      ['a filename with /', { ...valid, filename: 'sub/dump.sql' }],
      ['a filename that climbs out', { ...valid, filename: '../../etc/shadow' }],
      ['a filename of ..', { ...valid, filename: '..' }],
      ['a filename of .', { ...valid, filename: '.' }],
      ['a filename with a backslash', { ...valid, filename: '..\\x' }],
      ['a filename with NUL', { ...valid, filename: 'dump\u0000.sql' }],
      ['an empty filename', { ...valid, filename: '' }],
      ['a 256-byte filename', { ...valid, filename: 'x'.repeat(256) }],
      ['an instance with /', { ...valid, instance: '3306/..' }],
      ['a server_id of ..', { ...valid, server_id: '..' }],
      ['no filename', without('filename')],
      ['no exp', without('exp')],
      ['no blake3', without('blake3')],
      ['no version', without('v')],
      ['version 2', { ...valid, v: 2 }],
      ['an unknown purpose', { ...valid, purpose: 'delete' }],
      ['an upper-case digest', { ...valid, blake3: CLAIMS.blake3.toUpperCase() }],
      ['a negative size', { ...valid, size: -1 }],
      ['a fractional exp', { ...valid, exp: NOW + 0.5 }],
      ['exp as a string', { ...valid, exp: String(NOW + MINUTE) }],
      ['an unsafe integer size', { ...valid, size: 2 ** 60 }],
      ['an empty node', { ...valid, node: '' }],
      ['null claims', null],
      ['an array', [valid]],
      ['a string', 'pull'],
    ])('%s', (_name, claims) => {
      expect(verifyTicket(signJson(claims), keys.publicKey, NOW)).toEqual({
        ok: false,
        problem: 'invalid_claims',
      });
    });

    it.each([
      ['not JSON', Buffer.from('not json', 'utf8')],
      ['truncated JSON', Buffer.from(JSON.stringify(valid).slice(0, -1), 'utf8')],
      ['invalid UTF-8', Buffer.from([0xff, 0xfe, 0x7b, 0x7d])],
    ])('a signed payload that is %s', (_name, payload) => {
      expect(verifyTicket(signRaw(payload), keys.publicKey, NOW)).toEqual({
        ok: false,
        problem: 'invalid_claims',
      });
    });

    it('checks the claims before the expiry', () => {
      const ticket = signJson({ ...valid, exp: NOW - MINUTE, filename: '../x' });
      expect(verifyTicket(ticket, keys.publicKey, NOW)).toEqual({ ok: false, problem: 'invalid_claims' });
    });
  });

  describe('keys', () => {
    it('export and import of both keys round-trip', () => {
      const publicText = exportPublicKey(keys.publicKey);
      const privateText = exportPrivateKey(keys.privateKey);
      expect(publicText).toMatch(/^[A-Za-z0-9+/]+=*$/);
      expect(privateText).toMatch(/^[A-Za-z0-9+/]+=*$/);
      const publicKey = importPublicKey(publicText);
      const privateKey = importPrivateKey(privateText);
      expect(publicKey.asymmetricKeyType).toBe('ed25519');
      expect(privateKey.asymmetricKeyType).toBe('ed25519');
      expect(exportPublicKey(publicKey)).toBe(publicText);
      expect(exportPrivateKey(privateKey)).toBe(privateText);
      expect(publicKey.equals(keys.publicKey)).toBe(true);
      // A ticket signed with the imported private key verifies with the original public key, and vice versa.
      expect(verifyTicket(signTicket(CLAIMS, privateKey), keys.publicKey, NOW).ok).toBe(true);
      expect(verifyTicket(signTicket(CLAIMS, keys.privateKey), publicKey, NOW).ok).toBe(true);
    });

    it('an imported key of another pair does not verify', () => {
      const other = importPublicKey(exportPublicKey(otherKeys.publicKey));
      expect(verifyTicket(signTicket(CLAIMS, keys.privateKey), other, NOW)).toEqual({
        ok: false,
        problem: 'bad_signature',
      });
    });

    it('import refuses garbage', () => {
      expect(() => importPublicKey('')).toThrow();
      expect(() => importPublicKey('bm90IGEga2V5')).toThrow();
      expect(() => importPrivateKey('bm90IGEga2V5')).toThrow();
    });

    it('each generated pair is new', () => {
      expect(exportPublicKey(generateTicketKeys().publicKey)).not.toBe(exportPublicKey(keys.publicKey));
    });
  });

  describe('size', () => {
    it('the largest valid claims still fit in MAX_TICKET_CHARS', () => {
      // Each field at its limit, in the characters that JSON escapes the longest:
      // a lone surrogate is 3 bytes in the component limit but 6 characters in JSON
      // (`\ud800`), a control character in the free-text node name is 6 as well.
      const lone = '\ud800';
      const extreme = -Number.MAX_SAFE_INTEGER;
      const claims: TicketClaims = {
        ...CLAIMS,
        purpose: 'restore',
        job_id: extreme,
        backup_id: extreme,
        server_id: lone.repeat(64),
        type: lone.repeat(64),
        instance: lone.repeat(85),
        filename: lone.repeat(85),
        size: Number.MAX_SAFE_INTEGER,
        node: '\u0001'.repeat(128),
        exp: Number.MAX_SAFE_INTEGER,
      };
      const ticket = signTicket(claims, keys.privateKey);
      expect(ticket.length).toBeLessThanOrEqual(MAX_TICKET_CHARS);
      expect(verifyTicket(ticket, keys.publicKey, NOW)).toEqual({ ok: true, claims });
    });
  });

  describe('strictness of verifyTicket', () => {
    it('refuses a non-canonical base64url signature (the same 64 bytes, another string)', () => {
      // 64 bytes are 86 base64url characters, the last of which carries 2 bits: 15 other
      // characters in its place decode to the same signature, so one ticket has 16 spellings.
      const ticket = signTicket(CLAIMS, keys.privateKey);
      const [payload, signature] = parts(ticket);
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const spellings = [...alphabet]
        .map((c) => `${payload}.${signature.slice(0, -1)}${c}`)
        .filter((t) => t !== ticket && verifyTicket(t, keys.publicKey, NOW).ok);
      expect(spellings).toEqual([]);
    });

    it('fails closed when the clock reading is not a number', () => {
      const ticket = signTicket(CLAIMS, keys.privateKey);
      expect(verifyTicket(ticket, keys.publicKey, Number.NaN).ok).toBe(false);
    });
  });

  describe('properties', () => {
    const component = (maxChars: number): fc.Arbitrary<string> =>
      fc
        .oneof(
          fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/),
          fc.string({ minLength: 1, maxLength: maxChars, unit: 'grapheme' }),
          fc.string({ minLength: 1, maxLength: maxChars, unit: 'binary' }),
        )
        .filter((s) => s.length <= maxChars && isSafeComponent(s));

    const claimsArb: fc.Arbitrary<TicketClaims> = fc.record({
      v: fc.constant(TICKET_VERSION),
      purpose: fc.constantFrom('pull' as const, 'restore' as const),
      job_id: fc.option(fc.maxSafeInteger(), { nil: null }),
      backup_id: fc.maxSafeInteger(),
      server_id: component(64),
      type: component(64),
      instance: component(128),
      filename: component(255),
      size: fc.maxSafeNat(),
      blake3: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex')),
      node: fc.string({ minLength: 1, maxLength: 128, unit: 'binary' }),
      exp: fc.integer({ min: NOW + 1, max: Number.MAX_SAFE_INTEGER }),
    });

    it('any valid claims round-trip, and the ticket fits the length limit', () => {
      fc.assert(
        fc.property(claimsArb, (claims) => {
          const ticket = signTicket(claims, keys.privateKey);
          expect(ticket.length).toBeLessThanOrEqual(MAX_TICKET_CHARS);
          expect(verifyTicket(ticket, keys.publicKey, NOW)).toEqual({ ok: true, claims });
          expect(verifyTicket(ticket, keys.publicKey, claims.exp)).toEqual({ ok: false, problem: 'expired' });
          expect(verifyTicket(ticket, otherKeys.publicKey, NOW)).toEqual({
            ok: false,
            problem: 'bad_signature',
          });
        }),
      );
    });

    it('any change to a valid ticket’s payload is refused', () => {
      fc.assert(
        fc.property(claimsArb, fc.nat(), fc.integer({ min: 1, max: 255 }), (claims, at, xor) => {
          const [payload, signature] = parts(signTicket(claims, keys.privateKey));
          const bytes = Buffer.from(payload, 'base64url');
          const i = at % bytes.length;
          bytes[i] = (bytes[i] as number) ^ xor;
          expect(verifyTicket(`${bytes.toString('base64url')}.${signature}`, keys.publicKey, NOW).ok).toBe(
            false,
          );
        }),
      );
    });
  });
});
