import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ALERT_TYPES, SEVERITIES } from '../../src/server/alerts/alert-kind.js';
import { type ChannelConfig, ChannelConfigSchema } from '../../src/server/notify/channel-config.js';
import { redactChannel, redactUrl } from '../../src/server/notify/redact-channel.js';

const filter = { businesses: [], types: [], minSeverity: 'info' } as const;

describe('ChannelConfigSchema', () => {
  it('accepts each kind and fills in the filter and repeat defaults', () => {
    const inputs = [
      { kind: 'webhook', name: 'ops', settings: { url: 'https://hooks.example/ubackup', secret: 's3cret' } },
      { kind: 'slack', name: 'slack', settings: { url: 'https://hooks.slack.com/services/T/B/X' } },
      {
        kind: 'dingtalk',
        name: 'dt',
        settings: { url: 'https://oapi.dingtalk.com/robot/send?access_token=a' },
      },
      {
        kind: 'wecom',
        name: 'wc',
        settings: { url: 'https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k' },
      },
      { kind: 'feishu', name: 'fs', settings: { url: 'https://open.feishu.cn/open-apis/bot/v2/hook/x' } },
      {
        kind: 'email',
        name: 'mail',
        settings: {
          host: 'smtp.example',
          port: 587,
          secure: false,
          user: 'u',
          password: 'p',
          from: 'UBackup <alerts@example.com>',
          to: ['oncall@example.com'],
        },
      },
    ];
    for (const input of inputs) {
      const parsed = ChannelConfigSchema.parse(input);
      expect(parsed.filter).toEqual(filter);
      expect(parsed.repeatSeconds).toBe(0);
      expect(parsed.kind).toBe(input.kind);
    }
  });

  it('refuses non-http URLs, unknown fields, bad filters and bad e-mail settings', () => {
    const bad: unknown[] = [
      { kind: 'slack', name: 'x', settings: { url: 'ftp://hooks.example/x' } },
      { kind: 'slack', name: 'x', settings: { url: 'javascript:alert(1)' } },
      { kind: 'slack', name: 'x', settings: { url: 'https://h/x', secret: 'not for slack' } },
      { kind: 'wecom', name: 'x', settings: { url: 'https://h/x' }, extra: 1 },
      { kind: 'sms', name: 'x', settings: { url: 'https://h/x' } },
      { kind: 'webhook', name: '  ', settings: { url: 'https://h/x' } },
      { kind: 'webhook', name: 'x', settings: { url: 'https://h/x' }, repeatSeconds: -1 },
      { kind: 'webhook', name: 'x', settings: { url: 'https://h/x' }, repeatSeconds: 1.5 },
      { kind: 'webhook', name: 'x', settings: { url: 'https://h/x' }, filter: { types: ['nope'] } },
      { kind: 'webhook', name: 'x', settings: { url: 'https://h/x' }, filter: { minSeverity: 'fatal' } },
      { kind: 'webhook', name: 'x', settings: { url: 'https://h/x' }, filter: { businesses: [''] } },
      {
        kind: 'email',
        name: 'x',
        settings: { host: 'h', port: 25, secure: false, from: 'a@b.example', to: [] },
      },
      {
        kind: 'email',
        name: 'x',
        settings: { host: 'h', port: 25, secure: false, from: 'not an address', to: ['a@b.example'] },
      },
      {
        kind: 'email',
        name: 'x',
        settings: { host: 'h', port: 70_000, secure: false, from: 'a@b.example', to: ['a@b.example'] },
      },
      {
        kind: 'email',
        name: 'x',
        settings: {
          host: 'h',
          port: 25,
          secure: false,
          password: 'p',
          from: 'a@b.example',
          to: ['a@b.example'],
        },
      },
    ];
    for (const input of bad)
      expect(ChannelConfigSchema.safeParse(input).success, JSON.stringify(input)).toBe(false);
  });
});

describe('redactChannel', () => {
  it('shows only the origin of a URL', () => {
    expect(redactUrl('https://oapi.dingtalk.com/robot/send?access_token=abc')).toBe(
      'https://oapi.dingtalk.com/…',
    );
    expect(redactUrl('https://user:pw@hooks.example:8443/x#frag')).toBe('https://hooks.example:8443/…');
    expect(redactUrl('http://hooks.example/')).toBe('http://hooks.example');
    expect(redactUrl('not a url')).toBe('…');
  });

  it('says whether a secret or password is set without showing it', () => {
    const webhook = ChannelConfigSchema.parse({
      kind: 'webhook',
      name: 'ops',
      settings: { url: 'https://hooks.example/t0ken', secret: 'hmac-key' },
    });
    expect(redactChannel(webhook)).toEqual({
      kind: 'webhook',
      name: 'ops',
      filter,
      repeatSeconds: 0,
      settings: { url: 'https://hooks.example/…', secretSet: true },
    });
    const email = ChannelConfigSchema.parse({
      kind: 'email',
      name: 'mail',
      settings: { host: 'smtp.example', port: 465, secure: true, from: 'a@b.example', to: ['c@d.example'] },
    });
    expect(redactChannel(email).settings).toEqual({
      host: 'smtp.example',
      port: 465,
      secure: true,
      user: null,
      passwordSet: false,
      from: 'a@b.example',
      to: ['c@d.example'],
    });
  });

  // Secrets are long random tokens, as real ones are, so that finding one in the output is a leak and not
  // a coincidence with a word of the fixed text.
  const token = fc.stringMatching(/^[A-Za-z0-9_-]{16,40}$/);
  const filterArb = fc.record({
    businesses: fc.array(fc.stringMatching(/^[a-z]{1,6}$/), { maxLength: 3 }),
    types: fc.subarray([...ALERT_TYPES]),
    minSeverity: fc.constantFrom(...SEVERITIES),
  });
  const common = {
    name: fc.stringMatching(/^[a-z ]{1,10}$/).filter((s) => s.trim() !== ''),
    filter: filterArb,
    repeatSeconds: fc.nat({ max: 86_400 }),
  };
  const host = fc.constantFrom('hooks.example', 'oapi.dingtalk.com', 'open.feishu.cn', '127.0.0.1:8080');
  const urlWithTokens = fc
    .tuple(fc.constantFrom('http', 'https'), host, token, token)
    .map(
      ([scheme, h, pathToken, queryToken]) => `${scheme}://${h}/hook/${pathToken}?access_token=${queryToken}`,
    );
  const httpChannel = fc.record({
    kind: fc.constantFrom('webhook', 'dingtalk', 'feishu'),
    ...common,
    settings: fc.record({ url: urlWithTokens, secret: token }),
  });
  const plainHttpChannel = fc.record({
    kind: fc.constantFrom('slack', 'wecom'),
    ...common,
    settings: fc.record({ url: urlWithTokens }),
  });
  const emailChannel = fc.record({
    kind: fc.constant('email'),
    ...common,
    settings: fc.record({
      host: fc.constant('smtp.example'),
      port: fc.integer({ min: 1, max: 65_535 }),
      secure: fc.boolean(),
      user: fc.constant('alerts'),
      password: token,
      from: fc.constant('alerts@example.com'),
      to: fc.constant(['oncall@example.com']),
    }),
  });

  it('never returns a secret, a password or a URL token (property)', () => {
    fc.assert(
      fc.property(fc.oneof(httpChannel, plainHttpChannel, emailChannel), (input) => {
        const channel: ChannelConfig = ChannelConfigSchema.parse(input);
        const shown = JSON.stringify(redactChannel(channel));
        const settings = input.settings as Record<string, unknown>;
        const secrets: string[] = [];
        if (typeof settings.secret === 'string') secrets.push(settings.secret);
        if (typeof settings.password === 'string') secrets.push(settings.password);
        if (typeof settings.url === 'string') {
          const url = new URL(settings.url);
          secrets.push(url.pathname.split('/').pop()!, url.searchParams.get('access_token')!);
        }
        for (const secret of secrets) expect(shown).not.toContain(secret);
      }),
      { numRuns: 300 },
    );
  });
});
