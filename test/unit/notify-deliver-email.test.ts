import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createServer, type Server, type Socket } from 'node:net';
import { type AddressObject, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { afterEach, describe, expect, it } from 'vitest';
import type { AlertNotice } from '../../src/server/alerts/alert-kind.js';
import { type ChannelConfig, ChannelConfigSchema } from '../../src/server/notify/channel-config.js';
import { deliver } from '../../src/server/notify/deliver.js';
import { noticeMessage } from '../../src/server/notify/notice-message.js';

interface Received {
  from: string | undefined;
  to: string[];
  subject: string | undefined;
  text: string | undefined;
  envelopeTo: string[];
  user: unknown;
}

/** A local SMTP sink on 127.0.0.1 and a random port, without TLS, that keeps every message it accepts. */
class SmtpSink {
  readonly received: Received[] = [];
  /** An SMTP reply code to refuse the next recipient with. */
  refuseRecipient: number | null = null;
  private constructor(
    private readonly server: SMTPServer,
    readonly port: number,
  ) {}

  static async start(auth?: { user: string; password: string }): Promise<SmtpSink> {
    let sink: SmtpSink | undefined;
    const server = new SMTPServer({
      authOptional: auth === undefined,
      allowInsecureAuth: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onAuth(credentials, _session, callback) {
        if (auth && credentials.username === auth.user && credentials.password === auth.password) {
          callback(null, { user: credentials.username });
        } else {
          callback(Object.assign(new Error('Invalid username or password'), { responseCode: 535 }));
        }
      },
      onRcptTo(_address, _session, callback) {
        const code = sink?.refuseRecipient ?? null;
        if (code === null) return callback();
        callback(
          Object.assign(new Error(code >= 500 ? 'No such user' : 'Try again later'), { responseCode: code }),
        );
      },
      onData(stream, session, callback) {
        simpleParser(stream)
          .then((mail) => {
            const to = ([] as AddressObject[])
              .concat(mail.to ?? [])
              .flatMap((a) => a.value.map((v) => v.address ?? ''));
            sink?.received.push({
              from: mail.from?.value[0]?.address,
              to,
              subject: mail.subject,
              text: mail.text,
              envelopeTo: session.envelope.rcptTo.map((r) => r.address),
              user: session.user,
            });
            callback();
          })
          .catch((error: Error) => callback(error));
      },
    });
    server.listen(0, '127.0.0.1');
    await once(server.server, 'listening');
    sink = new SmtpSink(server, (server.server.address() as AddressInfo).port);
    return sink;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const NOW = Date.UTC(2026, 0, 2, 3, 30, 0);
const notice: AlertNotice = {
  id: 7,
  type: 'integrity',
  severity: 'critical',
  subject: 'db02/pg/5432',
  gameId: 'game2',
  state: 'open',
  summary: 'stored file on n2 does not match its BLAKE3',
  openedAt: NOW - 120_000,
  resolvedAt: null,
};
const message = noticeMessage(
  { event: 'opened', notice },
  { nowMs: NOW, dashboardUrl: 'https://ubackup.example' },
);

function emailChannel(port: number, extra: Record<string, unknown> = {}): ChannelConfig {
  return ChannelConfigSchema.parse({
    kind: 'email',
    name: 'on-call mail',
    settings: {
      host: '127.0.0.1',
      port,
      secure: false,
      from: 'UBackup <alerts@ubackup.example>',
      to: ['oncall@ubackup.example', 'dba@ubackup.example'],
      ...extra,
    },
  });
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function sink(auth?: { user: string; password: string }): Promise<SmtpSink> {
  const started = await SmtpSink.start(auth);
  cleanups.push(() => started.stop());
  return started;
}

describe('email delivery', () => {
  it('sends one mail with the tagged title as subject and the message as plain text', async () => {
    const smtp = await sink();
    const result = await deliver(emailChannel(smtp.port), message, { nowMs: NOW, timeoutMs: 5000 });
    expect(result).toEqual({ ok: true });
    expect(smtp.received).toHaveLength(1);
    const mail = smtp.received[0]!;
    expect(mail.from).toBe('alerts@ubackup.example');
    expect(mail.to).toEqual(['oncall@ubackup.example', 'dba@ubackup.example']);
    expect(mail.envelopeTo).toEqual(['oncall@ubackup.example', 'dba@ubackup.example']);
    expect(mail.subject).toBe('UBackup [CRITICAL] integrity: db02/pg/5432');
    expect(mail.text?.trim().split('\n')).toEqual([
      '[CRITICAL] integrity: db02/pg/5432',
      '',
      'Opened 2026-01-02 03:28 UTC',
      'Type: integrity (critical)',
      'Subject: db02/pg/5432',
      'Business: game2',
      'Summary: stored file on n2 does not match its BLAKE3',
      'Alert #7 · https://ubackup.example',
    ]);
  });

  it('logs in with user and password when they are set', async () => {
    const smtp = await sink({ user: 'mailer', password: 'pa55-w0rd' });
    const ok = await deliver(emailChannel(smtp.port, { user: 'mailer', password: 'pa55-w0rd' }), message, {
      nowMs: NOW,
      timeoutMs: 5000,
    });
    expect(ok).toEqual({ ok: true });
    expect(smtp.received[0]?.user).toBe('mailer');

    const refused = await deliver(
      emailChannel(smtp.port, { user: 'mailer', password: 'wrong-pass' }),
      message,
      {
        nowMs: NOW,
        timeoutMs: 5000,
      },
    );
    expect(refused).toMatchObject({ ok: false, retryable: false });
    if (refused.ok) throw new Error('unreachable');
    expect(refused.error).not.toContain('wrong-pass');
    expect(smtp.received).toHaveLength(1);
  });

  it('a 5xx refusal of a recipient is final, a 4xx one is retryable', async () => {
    const smtp = await sink();
    smtp.refuseRecipient = 550;
    expect(await deliver(emailChannel(smtp.port), message, { nowMs: NOW, timeoutMs: 5000 })).toMatchObject({
      ok: false,
      retryable: false,
    });
    smtp.refuseRecipient = 451;
    expect(await deliver(emailChannel(smtp.port), message, { nowMs: NOW, timeoutMs: 5000 })).toMatchObject({
      ok: false,
      retryable: true,
    });
    expect(smtp.received).toHaveLength(0);
  });

  it('a refused connection and a server that never greets are retryable', async () => {
    const probe = await SmtpSink.start();
    const closedPort = probe.port;
    await probe.stop();
    expect(await deliver(emailChannel(closedPort), message, { nowMs: NOW, timeoutMs: 5000 })).toMatchObject({
      ok: false,
      retryable: true,
    });

    const sockets = new Set<Socket>();
    const silent: Server = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    cleanups.push(async () => {
      for (const socket of sockets) socket.destroy();
      silent.close();
      await once(silent, 'close');
    });
    const started = Date.now();
    const result = await deliver(emailChannel((silent.address() as AddressInfo).port), message, {
      nowMs: NOW,
      timeoutMs: 300,
    });
    expect(result).toMatchObject({ ok: false, retryable: true });
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
