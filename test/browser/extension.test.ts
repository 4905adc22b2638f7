import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import type { BrowserContext, Page, Worker } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AlertType } from '../../src/server/alerts/alert-kind.js';
import { openAlerts } from '../../src/server/alerts/alert-store.js';
import { type ExtensionBrowser, launchChromiumWithExtension } from '../support/chromium.js';
import { runCli, type ServerProcess, startServerProcess } from '../support/cli-process.js';
import { createToken, type ProcessCatalog, processCatalog, readCatalog } from '../support/process-catalog.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait-for.js';

/** What `npm run build:extension` (part of `npm run build`) produces. */
const BUILT = resolve(import.meta.dirname, '../../dist/extension');
const ZIP = resolve(import.meta.dirname, '../../dist/extension.zip');
const SCREENSHOTS = resolve(import.meta.dirname, '../../test-output/screenshots');
const COLOR_NEW = [217, 48, 37, 255];
const COLOR_SEEN = [25, 103, 210, 255];
const COLOR_PROBLEM = [128, 134, 139, 255];
const SUMMARIES: Partial<Record<AlertType, string>> = {
  script_failed: 'backup failed: Disk 100% full on /data',
  overdue: 'no successful backup for 26 h (daily)',
  transfer_failed: 'transfer gave up after 5 attempts: connection refused',
  stuck: 'run has not finished after 6 h',
};
const WAIT = { timeoutMs: 20_000, intervalMs: 100 };

/**
 * The part of the extension API the test calls inside the browser: the callbacks passed to
 * evaluate() run in the extension, where `chrome` exists; the root tsconfig has no chrome types.
 */
declare const chrome: {
  action: {
    getBadgeText(details: object): Promise<string>;
    getBadgeBackgroundColor(details: object): Promise<number[]>;
    getTitle(details: object): Promise<string>;
  };
  notifications: { getAll(): Promise<Record<string, boolean>> };
  runtime: { sendMessage(message: unknown): Promise<unknown> };
  storage: { local: { get(key: string): Promise<Record<string, unknown>> } };
  i18n: { getMessage(key: string, substitutions?: string[]): string };
};

/** The names in a zip file's central directory, sorted. */
function zipEntries(zip: Buffer): string[] {
  const end = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (end < 0) throw new Error('not a zip file: no end of central directory');
  const count = zip.readUInt16LE(end + 10);
  let at = zip.readUInt32LE(end + 16);
  const names: string[] = [];
  for (let i = 0; i < count; i += 1) {
    if (zip.readUInt32LE(at) !== 0x02014b50) throw new Error(`zip entry ${i}: bad central directory header`);
    const nameLength = zip.readUInt16LE(at + 28);
    const extraLength = zip.readUInt16LE(at + 30);
    const commentLength = zip.readUInt16LE(at + 32);
    names.push(zip.toString('utf8', at + 46, at + 46 + nameLength));
    at += 46 + nameLength + extraLength + commentLength;
  }
  return names.sort();
}

interface Summary {
  followed: { open: number; acknowledged: number };
}

describe('the browser extension against a real server', () => {
  let dir: TempDir;
  let pc: ProcessCatalog;
  let server: ServerProcess;
  let adminToken: string;
  let aliceToken: string;
  let browser: ExtensionBrowser;
  let context: BrowserContext;
  let extensionId: string;
  /** The options page stays open: it is where the test asks the worker for a check. */
  let options: Page;

  beforeAll(async () => {
    if (!existsSync(join(BUILT, 'manifest.json')) || !existsSync(ZIP)) {
      throw new Error(
        `${BUILT} or ${ZIP} is missing: run "npm run build" (or "npm run -s build:extension") first`,
      );
    }
    dir = await makeTempDir('ubackup-extension');
    pc = await processCatalog('sqlite', dir.path);
    adminToken = await createToken(pc, 'admin', 'setup');
    const passwordFile = join(dir.path, 'password');
    await writeFile(passwordFile, 'correct horse battery staple\n');
    const user = await runCli([
      'admin',
      'user',
      'create',
      '--name',
      'alice',
      '--role',
      'operator',
      '--password-file',
      passwordFile,
      '--data-dir',
      pc.dataDir,
    ]);
    expect(user.code, user.stderr).toBe(0);
    const token = await runCli([
      'admin',
      'token',
      'create',
      '--role',
      'operator',
      '--name',
      'alice-browser',
      '--user',
      'alice',
      '--data-dir',
      pc.dataDir,
    ]);
    expect(token.code, token.stderr).toBe(0);
    aliceToken = token.stdout.trim();
    // The alert engine never runs during the test: the alerts opened here stay as they are.
    server = await startServerProcess({ dataDir: pc.dataDir, extraArgs: ['--alert-sweep-seconds', '3600'] });
    for (const game_id of ['31', '32']) {
      await api(adminToken, 'POST', '/api/v1/businesses', { game_id, name: `Game ${game_id}` });
    }
    await api(aliceToken, 'PUT', '/api/v1/me/focus', { businesses: ['31'] });

    // Chromium asks the user before granting a host permission, and headless Chromium has no one
    // to ask: the copy loaded here holds loopback as a granted host permission, so the options
    // page's chrome.permissions.request resolves true at once, as after the user's "Allow".
    const unpacked = join(dir.path, 'extension');
    await cp(BUILT, unpacked, { recursive: true });
    const manifestPath = join(unpacked, 'manifest.json');
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as Record<string, unknown>;
    manifest.host_permissions = ['http://127.0.0.1/*'];
    await writeFile(manifestPath, JSON.stringify(manifest));
    browser = await launchChromiumWithExtension(unpacked);
    context = browser.context;
    extensionId = new URL((await worker()).url()).host;
    await mkdir(SCREENSHOTS, { recursive: true });
    options = await context.newPage();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.stop('SIGKILL');
    await dir?.cleanup();
  });

  async function api<T>(token: string, method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path} answered ${res.status}: ${text}`);
    return JSON.parse(text) as T;
  }

  /** The extension's service worker (a new one if Chromium stopped the last). */
  async function worker(): Promise<Worker> {
    const running = context.serviceWorkers().find((w) => w.url().startsWith('chrome-extension://'));
    return running ?? context.waitForEvent('serviceworker', { timeout: 20_000 });
  }

  async function badge(): Promise<{ text: string; color: number[]; title: string }> {
    return (await worker()).evaluate(async () => ({
      text: await chrome.action.getBadgeText({}),
      color: await chrome.action.getBadgeBackgroundColor({}),
      title: await chrome.action.getTitle({}),
    }));
  }

  async function notifications(): Promise<string[]> {
    return Object.keys(await (await worker()).evaluate(() => chrome.notifications.getAll()));
  }

  /** Asks the worker for a check now, as the popup's refresh does, instead of waiting for the alarm. */
  async function check(): Promise<void> {
    await options.evaluate(() => chrome.runtime.sendMessage({ type: 'refresh' }));
  }

  async function followedOpen(): Promise<number> {
    return (await api<Summary>(aliceToken, 'GET', '/api/v1/alerts/summary')).followed.open;
  }

  async function badgeShows(expected: { text: string; color?: number[] }, what: string) {
    return waitFor(
      async () => {
        const now = await badge();
        return now.text === expected.text && (!expected.color || now.color.join() === expected.color.join())
          ? now
          : undefined;
      },
      { ...WAIT, what },
    );
  }

  async function open(type: AlertType, gameId: string, count = 1): Promise<number[]> {
    const openings = Array.from({ length: count }, (_, i) => ({
      type,
      subject: `5001/mysql/${4000 + Math.floor(Math.random() * 1e6) + i}`,
      gameId,
      summary: SUMMARIES[type] ?? type,
    }));
    const opened = await readCatalog(pc.location, (catalog) => openAlerts(catalog.db, openings, Date.now()));
    return opened.map((o) => o.id);
  }

  async function openOptions(): Promise<void> {
    await options.goto(`chrome-extension://${extensionId}/options.html`);
    await options.waitForSelector('body[data-ready="true"]');
  }

  async function save(token: string, language = 'en'): Promise<string> {
    await options.fill('#server', server.url);
    await options.fill('#token', token);
    await options.fill('#interval', '60');
    await options.selectOption('#language', language);
    await options.locator('#status').evaluate((status) => status.removeAttribute('data-kind'));
    await options.click('#save');
    await options.waitForSelector(
      '#status[data-kind="ok"], #status[data-kind="warn"], #status[data-kind="error"]',
    );
    return (await options.textContent('#status')) ?? '';
  }

  async function openPopup(): Promise<Page> {
    const popup = await context.newPage();
    await popup.setViewportSize({ width: 400, height: 600 });
    await popup.goto(`chrome-extension://${extensionId}/popup.html`);
    await popup.waitForSelector('body[data-ready="true"]');
    return popup;
  }

  it('ships the unpacked files, and only those, in dist/extension.zip', async () => {
    const unpacked = (await readdir(BUILT, { recursive: true, withFileTypes: true }))
      .filter((e) => e.isFile())
      .map((e) => relative(BUILT, join(e.parentPath, e.name)).split(sep).join('/'))
      .sort();
    expect(zipEntries(await readFile(ZIP))).toEqual(unpacked);
    expect(unpacked).toContain('manifest.json');
    expect(unpacked).toContain('icons/icon-128.png');
  });

  it('is not set up until the options are saved, and refuses a token the server does not know', async () => {
    // The browser's own chrome.i18n (the "browser language" setting) fills in substitutions too.
    expect(await (await worker()).evaluate(() => chrome.i18n.getMessage('badgeOpen', ['4']))).toBe(
      '4 open alerts in the businesses you follow',
    );
    const unset = await badgeShows({ text: '!', color: COLOR_PROBLEM }, 'the not-set-up badge');
    expect(unset.title).toBe(
      'UBackup alerts: not set up: open the options to enter the server and your API token',
    );
    await openOptions();
    const refused = await save(`ubt_${'A'.repeat(43)}`);
    expect(refused).toMatch(/^Not saved: the server refused the token \(401 unauthenticated: .+\)$/);
    // "Test connection" says who the token is and saves nothing.
    await options.fill('#token', aliceToken);
    await options.click('#test');
    await options.waitForSelector('#status[data-kind="ok"]');
    expect(await options.textContent('#status')).toBe('Connected as alice (operator).');
    const stored = await options.evaluate(() => chrome.storage.local.get('settings'));
    expect(stored.settings).toBeUndefined();
  });

  it('shows the followed open count after the options are saved', async () => {
    await open('script_failed', '31', 2);
    await open('overdue', '32'); // not followed
    await options.fill('#server', 'ftp://files.example');
    await options.click('#save');
    await waitFor(
      async () =>
        (await options.textContent('#status')) === 'the server URL must start with https:// or http://',
      { ...WAIT, what: 'the options page to refuse the URL' },
    );
    expect(await save(aliceToken)).toBe('Saved. Connected as alice (operator).');
    await options.screenshot({ path: join(SCREENSHOTS, 'extension-options.png'), fullPage: true });

    expect(await followedOpen()).toBe(2);
    // What was open before the extension started watching is the baseline: blue, no notification.
    await badgeShows({ text: '2', color: COLOR_SEEN }, 'the badge to show 2 in blue');
    expect((await badge()).title).toContain('2 open alerts in the businesses you follow');
    expect(await notifications()).toEqual([]);
  });

  it('notifies each new followed alert and turns red', async () => {
    const [id] = await open('transfer_failed', '31');
    await open('stuck', '32'); // not followed: no notification, not counted
    await check();
    await badgeShows({ text: String(await followedOpen()), color: COLOR_NEW }, 'the badge to show 3 in red');
    expect((await badge()).text).toBe('3');
    expect(await notifications()).toEqual([`alert-${id}`]);
  });

  it('makes one summary notification when more than five arrive at once', async () => {
    const ids = await open('overdue', '31', 6);
    await check();
    await badgeShows({ text: String(await followedOpen()), color: COLOR_NEW }, 'the badge to show 9');
    expect((await badge()).text).toBe('9');
    const shown = await notifications();
    expect(shown).toHaveLength(2);
    expect(shown.filter((n) => n.startsWith('alerts-'))).toHaveLength(1);
    for (const id of ids) expect(shown).not.toContain(`alert-${id}`);
  });

  it('lists the followed alerts in the popup; opening it turns the badge blue; acknowledge lowers the count', async () => {
    const popup = await openPopup();
    await badgeShows({ text: '9', color: COLOR_SEEN }, 'the badge to turn blue once the popup was opened');
    const items = popup.locator('li.alert');
    expect(await items.count()).toBe(9);
    const first = items.first();
    const id = Number(await first.getAttribute('data-id'));
    expect(await first.locator('a.type').getAttribute('href')).toBe(`${server.url}/alerts?id=${id}`);
    expect(await popup.locator('#dashboard').getAttribute('href')).toBe(`${server.url}/alerts?followed=1`);
    expect(await popup.textContent('#counts')).toBe('9 open · 0 acknowledged');
    await popup.screenshot({ path: join(SCREENSHOTS, 'extension-popup.png'), fullPage: true });

    await first.locator('button.ack').click();
    await first.locator('.comment').fill('looking at it');
    await first.locator('button.ack-ok').click();
    await badgeShows({ text: '8' }, 'the badge to drop to 8 after the acknowledge');
    expect(await followedOpen()).toBe(8);
    const detail = await api<{ state: string; ack_comment: string; acknowledged_by: string }>(
      aliceToken,
      'GET',
      `/api/v1/alerts/${id}`,
    );
    expect(detail).toMatchObject({ state: 'acknowledged', ack_comment: 'looking at it' });
    await waitFor(
      async () => (await popup.locator(`li.alert[data-id="${id}"][data-state="acknowledged"]`).count()) === 1,
      { ...WAIT, what: 'the popup to show the alert acknowledged' },
    );
    expect(await popup.locator(`li.alert[data-id="${id}"] button.ack`).isHidden()).toBe(true);
    await popup.screenshot({ path: join(SCREENSHOTS, 'extension-popup-acknowledged.png'), fullPage: true });
    await popup.close();
  });

  it('speaks Chinese when the options say so', async () => {
    await openOptions();
    expect(await save(aliceToken, 'zh_CN')).toBe('已保存。当前用户 alice（operator）。');
    await options.screenshot({ path: join(SCREENSHOTS, 'extension-options-zh.png'), fullPage: true });
    const popup = await openPopup();
    expect(await popup.textContent('#counts')).toBe('8 条未处理 · 1 条已确认');
    expect(await popup.locator('li.alert button.ack:visible').first().textContent()).toBe('确认');
    await popup.screenshot({ path: join(SCREENSHOTS, 'extension-popup-zh.png'), fullPage: true });
    await popup.close();
    await waitFor(async () => (await badge()).title.includes('你关注的业务有 8 条未处理告警'), {
      ...WAIT,
      what: 'the Chinese tooltip',
    });
  });

  it("shows a grey ! with the server's answer once the token is revoked", async () => {
    const revoked = await runCli([
      'admin',
      'token',
      'revoke',
      '--name',
      'alice-browser',
      '--data-dir',
      pc.dataDir,
    ]);
    expect(revoked.code, revoked.stderr).toBe(0);
    // The server trusts a revoked token for up to 10 s more (its principal cache).
    const refused = await waitFor(
      async () => {
        await check();
        const now = await badge();
        return now.text === '!' ? now : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500, what: 'the badge to show the refused token' },
    );
    expect(refused.color).toEqual(COLOR_PROBLEM);
    expect(refused.title).toMatch(/^UBackup 告警: 服务器拒绝了令牌（401 unauthenticated: .+）$/);
  });

  it('shows a grey ! instead of a stale number when the server is down', async () => {
    await server.stop('SIGKILL');
    await check();
    const down = await badgeShows({ text: '!', color: COLOR_PROBLEM }, 'the unreachable badge');
    expect(down.title).toMatch(/^UBackup 告警: 无法连接服务器（TypeError: .+）$/);
    const popup = await openPopup();
    expect(await popup.isVisible('#problem')).toBe(true);
    await popup.screenshot({ path: join(SCREENSHOTS, 'extension-popup-unreachable.png'), fullPage: true });
    await popup.close();
  });
});
