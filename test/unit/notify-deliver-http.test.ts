import { createHmac } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AlertNotice } from '../../src/server/alerts/alert-kind.js';
import { type ChannelConfig, ChannelConfigSchema } from '../../src/server/notify/channel-config.js';
import { deliver } from '../../src/server/notify/deliver.js';
import { digestMessage } from '../../src/server/notify/digest-message.js';
import { noticeMessage } from '../../src/server/notify/notice-message.js';
import type { NotifyMessage } from '../../src/server/notify/notify-message.js';

/** What the receiver does with the next request. */
type Answer = { status: number; body: string } | 'hang';

interface Received {
  method: string;
  /** Path and query exactly as sent. */
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A real HTTP server on 127.0.0.1 and a random port that records each request and answers as told. */
class Receiver {
  readonly received: Received[] = [];
  answers: Answer[] = [];
  private constructor(private readonly server: Server) {}

  static async start(): Promise<Receiver> {
    const server = createServer();
    const receiver = new Receiver(server);
    server.on('request', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        receiver.received.push({
          method: req.method ?? '',
          url: req.url ?? '',
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        });
        const answer = receiver.answers.shift() ?? { status: 200, body: '' };
        if (answer === 'hang') return;
        res.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.body);
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return receiver;
  }

  get base(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  get last(): Received {
    const last = this.received.at(-1);
    if (!last) throw new Error('no request received');
    return last;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, 'close');
  }
}

const NOW = Date.UTC(2026, 0, 2, 3, 30, 0) + 123;
const notice: AlertNotice = {
  id: 42,
  type: 'transfer_failed',
  severity: 'critical',
  subject: 'db01/mysql/3306',
  gameId: 'game1',
  state: 'open',
  summary: 'node n1 could not pull <full>: connection refused & gave up',
  openedAt: NOW - 60_000,
  resolvedAt: null,
};
const message: NotifyMessage = noticeMessage({ event: 'opened', notice }, { nowMs: NOW });
const options = { nowMs: NOW, timeoutMs: 5000 };

function channel(input: unknown): ChannelConfig {
  return ChannelConfigSchema.parse(input);
}

function json(body: string): Record<string, unknown> {
  return JSON.parse(body) as Record<string, unknown>;
}

let receiver: Receiver;
beforeEach(async () => {
  receiver = await Receiver.start();
});
afterEach(async () => {
  await receiver.stop();
});

describe('webhook', () => {
  it('POSTs the JSON with a timestamp and an HMAC-SHA256 signature over "<timestamp>.<body>"', async () => {
    const secret = 'whsec-7d1f0c2b';
    const ch = channel({
      kind: 'webhook',
      name: 'ops',
      settings: { url: `${receiver.base}/hooks/ubackup`, secret },
    });
    expect(await deliver(ch, message, options)).toEqual({ ok: true });

    const req = receiver.last;
    expect(req.method).toBe('POST');
    expect(req.url).toBe('/hooks/ubackup');
    expect(req.headers['content-type']).toBe('application/json; charset=utf-8');
    const timestamp = req.headers['x-ubackup-timestamp'];
    expect(timestamp).toBe(String(Math.floor(NOW / 1000)));
    const expected = createHmac('sha256', secret).update(`${timestamp}.${req.body}`).digest('hex');
    expect(req.headers['x-ubackup-signature']).toBe(`sha256=${expected}`);

    const body = json(req.body);
    expect(body).toMatchObject({
      event: 'opened',
      title: '[CRITICAL] transfer_failed: db01/mysql/3306',
      severity: 'critical',
      link: null,
      sent_at: new Date(NOW).toISOString(),
    });
    expect(body.alerts).toEqual([
      {
        event: 'opened',
        id: 42,
        type: 'transfer_failed',
        severity: 'critical',
        subject: 'db01/mysql/3306',
        game_id: 'game1',
        state: 'open',
        summary: notice.summary,
        opened_at: new Date(notice.openedAt).toISOString(),
        resolved_at: null,
      },
    ]);
    expect(body.text).toContain('Summary: node n1 could not pull <full>');
  });

  it('sends no signature without a secret, and a digest carries every alert', async () => {
    const ch = channel({ kind: 'webhook', name: 'ops', settings: { url: `${receiver.base}/h` } });
    const items = Array.from({ length: 30 }, (_, i) => ({
      event: 'opened' as const,
      notice: { ...notice, id: i },
    }));
    expect(await deliver(ch, digestMessage(items, { nowMs: NOW }), options)).toEqual({ ok: true });
    expect(receiver.last.headers['x-ubackup-signature']).toBeUndefined();
    const body = json(receiver.last.body);
    expect(body.event).toBe('digest');
    expect((body.alerts as unknown[]).length).toBe(30);
  });

  it('5xx, 429 and 408 are retryable; 400, 404 and redirects are not', async () => {
    const ch = channel({
      kind: 'webhook',
      name: 'ops',
      settings: { url: `${receiver.base}/h?token=abc123secret` },
    });
    const cases: [number, boolean][] = [
      [500, true],
      [503, true],
      [429, true],
      [408, true],
      [400, false],
      [404, false],
      [302, false],
    ];
    for (const [status, retryable] of cases) {
      receiver.answers.push({ status, body: '{"error":"nope"}' });
      const result = await deliver(ch, message, options);
      expect(result, String(status)).toMatchObject({ ok: false, retryable });
      if (result.ok) throw new Error('unreachable');
      expect(result.error).toContain(String(status));
      expect(result.error).not.toContain('abc123secret');
    }
  });

  it('a receiver that never answers is a retryable timeout', async () => {
    receiver.answers.push('hang');
    const ch = channel({ kind: 'webhook', name: 'ops', settings: { url: `${receiver.base}/h` } });
    const started = Date.now();
    const result = await deliver(ch, message, { nowMs: NOW, timeoutMs: 300 });
    expect(result).toEqual({
      ok: false,
      error: `${receiver.base}/…: no answer within 300 ms`,
      retryable: true,
    });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(receiver.received).toHaveLength(1);
  });

  it('a refused connection is retryable', async () => {
    const closed = await Receiver.start();
    const url = `${closed.base}/h`;
    await closed.stop();
    const result = await deliver(
      channel({ kind: 'webhook', name: 'x', settings: { url } }),
      message,
      options,
    );
    expect(result).toMatchObject({ ok: false, retryable: true });
  });
});

describe('slack', () => {
  it('POSTs {text} in mrkdwn with &, < and > escaped', async () => {
    const ch = channel({
      kind: 'slack',
      name: 's',
      settings: { url: `${receiver.base}/services/T0/B0/XYZ` },
    });
    receiver.answers.push({ status: 200, body: 'ok' });
    expect(await deliver(ch, message, options)).toEqual({ ok: true });
    const body = json(receiver.last.body);
    expect(Object.keys(body)).toEqual(['text']);
    const text = body.text as string;
    expect(text.split('\n')[0]).toBe('*UBackup [CRITICAL] transfer_failed: db01/mysql/3306*');
    expect(text).toContain('could not pull &lt;full&gt;: connection refused &amp; gave up');
  });

  it('Slack refuses with a 4xx (not retryable)', async () => {
    const ch = channel({
      kind: 'slack',
      name: 's',
      settings: { url: `${receiver.base}/services/T0/B0/XYZ` },
    });
    receiver.answers.push({ status: 403, body: 'invalid_token' });
    expect(await deliver(ch, message, options)).toMatchObject({ ok: false, retryable: false });
  });
});

describe('dingtalk', () => {
  const secret = 'SEC0123456789abcdef';

  it('signs the URL with timestamp (ms) and urlencoded base64 HMAC-SHA256(secret, "timestamp\\nsecret")', async () => {
    const ch = channel({
      kind: 'dingtalk',
      name: 'dt',
      settings: { url: `${receiver.base}/robot/send?access_token=tok`, secret },
    });
    receiver.answers.push({ status: 200, body: '{"errcode":0,"errmsg":"ok"}' });
    expect(await deliver(ch, message, options)).toEqual({ ok: true });

    const req = receiver.last;
    const url = new URL(req.url, receiver.base);
    expect(url.pathname).toBe('/robot/send');
    expect(url.searchParams.get('access_token')).toBe('tok');
    expect(url.searchParams.get('timestamp')).toBe(String(NOW));
    const expected = createHmac('sha256', secret).update(`${NOW}\n${secret}`).digest('base64');
    expect(url.searchParams.get('sign')).toBe(expected);
    // The raw query carries the signature URL-encoded, as DingTalk requires.
    const rawSign = /[?&]sign=([^&]*)/.exec(req.url)![1]!;
    expect(rawSign).toBe(encodeURIComponent(expected));
    expect(rawSign).not.toMatch(/[+/=]/);

    const body = json(req.body);
    expect(body.msgtype).toBe('markdown');
    const markdown = body.markdown as { title: string; text: string };
    expect(markdown.title).toBe('UBackup [CRITICAL] transfer_failed: db01/mysql/3306');
    expect(markdown.text.startsWith('#### UBackup [CRITICAL] transfer_failed: db01/mysql/3306\n\n')).toBe(
      true,
    );
    expect(markdown.text).toContain('Subject: db01/mysql/3306\n\nBusiness: game1');
  });

  it('without a secret the URL is used as configured', async () => {
    const ch = channel({
      kind: 'dingtalk',
      name: 'dt',
      settings: { url: `${receiver.base}/robot/send?access_token=t` },
    });
    receiver.answers.push({ status: 200, body: '{"errcode":0,"errmsg":"ok"}' });
    expect(await deliver(ch, message, options)).toEqual({ ok: true });
    expect(receiver.last.url).toBe('/robot/send?access_token=t');
  });

  it('an errcode in a 200 is a failure: a bad signature is final, "send too fast" is retryable', async () => {
    const ch = channel({
      kind: 'dingtalk',
      name: 'dt',
      settings: { url: `${receiver.base}/robot/send?access_token=tok-secret-123`, secret },
    });
    receiver.answers.push({ status: 200, body: '{"errcode":310000,"errmsg":"sign not match"}' });
    const refused = await deliver(ch, message, options);
    expect(refused).toMatchObject({ ok: false, retryable: false });
    if (refused.ok) throw new Error('unreachable');
    expect(refused.error).toContain('310000');
    expect(refused.error).toContain('sign not match');
    expect(refused.error).not.toContain('tok-secret-123');

    receiver.answers.push({ status: 200, body: '{"errcode":130101,"errmsg":"send too fast"}' });
    expect(await deliver(ch, message, options)).toMatchObject({ ok: false, retryable: true });

    receiver.answers.push({ status: 200, body: '<html>portal</html>' });
    expect(await deliver(ch, message, options)).toMatchObject({ ok: false, retryable: false });
  });

  it('500 is retryable, 400 is not', async () => {
    const ch = channel({
      kind: 'dingtalk',
      name: 'dt',
      settings: { url: `${receiver.base}/robot/send?access_token=t` },
    });
    receiver.answers.push({ status: 500, body: '' }, { status: 400, body: '' });
    expect(await deliver(ch, message, options)).toMatchObject({ ok: false, retryable: true });
    expect(await deliver(ch, message, options)).toMatchObject({ ok: false, retryable: false });
  });
});

describe('wecom', () => {
  it('POSTs {msgtype: markdown, markdown: {content}}', async () => {
    const ch = channel({
      kind: 'wecom',
      name: 'wc',
      settings: { url: `${receiver.base}/cgi-bin/webhook/send?key=k1` },
    });
    receiver.answers.push({ status: 200, body: '{"errcode":0,"errmsg":"ok"}' });
    expect(await deliver(ch, message, options)).toEqual({ ok: true });
    expect(receiver.last.url).toBe('/cgi-bin/webhook/send?key=k1');
    const body = json(receiver.last.body);
    expect(body.msgtype).toBe('markdown');
    const { content } = body.markdown as { content: string };
    expect(content.split('\n')[0]).toBe('**UBackup [CRITICAL] transfer_failed: db01/mysql/3306**');
    expect(content).toContain('Business: game1');
  });

  it('keeps a huge digest within 4096 bytes', async () => {
    const ch = channel({ kind: 'wecom', name: 'wc', settings: { url: `${receiver.base}/send?key=k1` } });
    const items = Array.from({ length: 50 }, (_, i) => ({
      event: 'opened' as const,
      notice: { ...notice, id: i, summary: '备份文件传输失败'.repeat(20), gameId: `业务${i}` },
    }));
    receiver.answers.push({ status: 200, body: '{"errcode":0,"errmsg":"ok"}' });
    expect(await deliver(ch, digestMessage(items, { nowMs: NOW }), options)).toEqual({ ok: true });
    const { content } = json(receiver.last.body).markdown as { content: string };
    expect(Buffer.byteLength(content, 'utf8')).toBeLessThanOrEqual(4096);
    expect(content.endsWith('…')).toBe(true);
  });

  it('an errcode in a 200 is a failure; 45009 (rate limit) is retryable', async () => {
    const ch = channel({ kind: 'wecom', name: 'wc', settings: { url: `${receiver.base}/send?key=k1` } });
    receiver.answers.push(
      { status: 200, body: '{"errcode":93000,"errmsg":"invalid webhook url"}' },
      { status: 200, body: '{"errcode":45009,"errmsg":"api freq out of limit"}' },
      { status: 502, body: '' },
    );
    expect(await deliver(ch, message, options)).toMatchObject({ ok: false, retryable: false });
    expect(await deliver(ch, message, options)).toMatchObject({ ok: false, retryable: true });
    expect(await deliver(ch, message, options)).toMatchObject({ ok: false, retryable: true });
  });
});

describe('feishu', () => {
  const secret = 'feishu-signing-secret';

  it('puts timestamp (s) and base64 HMAC-SHA256(key "timestamp\\nsecret", empty message) in the body', async () => {
    const ch = channel({
      kind: 'feishu',
      name: 'fs',
      settings: { url: `${receiver.base}/open-apis/bot/v2/hook/h1`, secret },
    });
    receiver.answers.push({ status: 200, body: '{"code":0,"msg":"success","data":{}}' });
    expect(await deliver(ch, message, options)).toEqual({ ok: true });

    const body = json(receiver.last.body);
    const timestamp = Math.floor(NOW / 1000);
    expect(body.timestamp).toBe(String(timestamp));
    const expected = createHmac('sha256', `${timestamp}\n${secret}`).update(Buffer.alloc(0)).digest('base64');
    expect(body.sign).toBe(expected);
    expect(body.msg_type).toBe('text');
    const { text } = body.content as { text: string };
    expect(text.split('\n')[0]).toBe('UBackup [CRITICAL] transfer_failed: db01/mysql/3306');
    expect(text).toContain(`Summary: ${notice.summary}`);
  });

  it('without a secret there is no timestamp or sign; the older StatusCode answer is understood', async () => {
    const ch = channel({
      kind: 'feishu',
      name: 'fs',
      settings: { url: `${receiver.base}/open-apis/bot/v2/hook/h1` },
    });
    receiver.answers.push({ status: 200, body: '{"StatusCode":0,"StatusMessage":"success"}' });
    expect(await deliver(ch, message, options)).toEqual({ ok: true });
    const body = json(receiver.last.body);
    expect(body.timestamp).toBeUndefined();
    expect(body.sign).toBeUndefined();
  });

  it('a code in a 200 is a failure; rate limiting is retryable', async () => {
    const ch = channel({ kind: 'feishu', name: 'fs', settings: { url: `${receiver.base}/hook/h1`, secret } });
    receiver.answers.push(
      { status: 200, body: '{"code":19021,"msg":"sign match fail or timestamp is not within one hour"}' },
      { status: 200, body: '{"code":11232,"msg":"frequency limited"}' },
      { status: 400, body: '{"code":9499,"msg":"Bad Request"}' },
    );
    const refused = await deliver(ch, message, options);
    expect(refused).toMatchObject({ ok: false, retryable: false });
    if (refused.ok) throw new Error('unreachable');
    expect(refused.error).toContain('19021');
    expect(await deliver(ch, message, options)).toMatchObject({ ok: false, retryable: true });
    expect(await deliver(ch, message, options)).toMatchObject({ ok: false, retryable: false });
  });
});
