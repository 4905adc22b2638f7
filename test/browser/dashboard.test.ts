import { mkdir, readFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from '../support/chromium.js';
import { waitFor } from '../support/wait-for.js';
import {
  createUser,
  type Dashboard,
  PASSWORD,
  SCREENSHOT_DIR,
  seedBackups,
  seedRegistry,
  startDashboard,
} from './dashboard-harness.js';

const GiB = 1024 ** 3;

/** Run in the page: what the clipboard holds. */
const readClipboard = () =>
  (
    globalThis as unknown as { navigator: { clipboard: { readText(): Promise<string> } } }
  ).navigator.clipboard.readText();

/** Run in the page: the signed-in user's saved time zone. */
const sessionZone = async () =>
  ((await (await fetch('/api/v1/session')).json()) as { user: { time_zone: string } }).user.time_zone;

/** Run in the page: the signed-in user's saved language. */
const sessionLocale = async () =>
  ((await (await fetch('/api/v1/session')).json()) as { user: { locale: string } }).user.locale;

describe('dashboard', () => {
  let d: Dashboard;
  let browser: Browser;
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    d = await startDashboard();
    await seedRegistry(d);
    await seedBackups(d, '5001', '3306', '31', true);
    await seedBackups(d, '5002', '3307', '32', true);
    await createUser(d.pc, 'alice', 'admin');
    await createUser(d.pc, 'oscar', 'operator');
    await createUser(d.pc, 'vera', 'viewer');
    await createUser(d.pc, 'lin', 'operator');
    browser = await launchChromium();
    await mkdir(SCREENSHOT_DIR, { recursive: true });
  });

  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
    await d?.stop();
  });

  type StorageState = Awaited<ReturnType<BrowserContext['storageState']>>;
  /** Each user signs in through the form once; later pages reuse the session (logins are rate-limited). */
  const signedIn = new Map<string, StorageState>();

  async function signIn(name: string, path = '/', browserZone?: string): Promise<Page> {
    const context = await browser.newContext({
      viewport: { width: 1440, height: 900 },
      locale: 'en-US',
      ...(browserZone ? { timezoneId: browserZone } : {}),
      permissions: ['clipboard-read', 'clipboard-write'],
      storageState: signedIn.get(name),
    });
    contexts.push(context);
    const page = await context.newPage();
    await page.goto(`${d.origin}${path}`);
    if (!signedIn.has(name)) {
      await page.getByLabel(/User name|用户名/).fill(name);
      await page.getByLabel(/Password|密码/).fill(PASSWORD);
      await page.getByRole('button', { name: /Sign in|登录/ }).click();
    }
    await page.getByTestId('user-menu').waitFor();
    if (!signedIn.has(name)) signedIn.set(name, await context.storageState());
    return page;
  }

  /** A full-page screenshot once nothing on the page is loading. */
  const shot = async (page: Page, name: string, lang: string) => {
    await expect.poll(() => page.locator('.ant-spin-spinning, .ant-skeleton-active').count()).toBe(0);
    await page.screenshot({
      path: `${SCREENSHOT_DIR}/${name}-${lang}.png`,
      fullPage: true,
      animations: 'disabled',
    });
  };

  it('refuses a wrong password with the server message, then logs in and out', async () => {
    const context = await browser.newContext({ locale: 'en-US' });
    contexts.push(context);
    const page = await context.newPage();
    await page.goto(`${d.origin}/instances?server_id=5001`);
    await expect.poll(() => new URL(page.url()).pathname).toBe('/login');
    await shot(page, 'login', 'en-US');
    await page.getByLabel('User name').fill('oscar');
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect
      .poll(() => page.getByTestId('login-error').textContent())
      .toContain('the name or the password is wrong');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    // Back where the link pointed, filter included.
    await expect.poll(() => page.url()).toBe(`${d.origin}/instances?server_id=5001`);
    await expect.poll(() => page.getByTestId('instances-total').textContent()).toBe('Total 1');
    // A session that ends while the page is open: the next call answers 401 and the page goes to login.
    await context.clearCookies();
    await page.getByRole('link', { name: 'Alerts' }).click();
    await expect.poll(() => page.url()).toBe(`${d.origin}/login?next=${encodeURIComponent('/alerts')}`);
    await page.getByLabel('User name').fill('oscar');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => new URL(page.url()).pathname).toBe('/alerts');
    await page.getByTestId('user-menu').click();
    await page.getByTestId('logout').click();
    await expect.poll(() => new URL(page.url()).pathname).toBe('/login');
    const after = await page.evaluate(async () => (await fetch('/api/v1/session')).status);
    expect(after).toBe(401);
  });

  it('hides what a viewer cannot do, and the API refuses it anyway', async () => {
    const page = await signIn('vera', '/instances');
    await page.getByTestId('instances-table').getByText('mysql-5001').waitFor();
    expect(await page.getByTestId('add-instance').count()).toBe(0);
    expect(await page.getByTestId('import-open').count()).toBe(0);
    expect(await page.locator('.ant-table-selection-column').count()).toBe(0);
    expect(await page.getByRole('link', { name: 'Users' }).count()).toBe(0);
    const status = await page.evaluate(async () => {
      const session = (await (await fetch('/api/v1/session')).json()) as { csrf_token: string };
      const res = await fetch('/api/v1/instances', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': session.csrf_token },
        body: JSON.stringify({ name: 'x', server_id: '9', type: 'mysql', instance: '1', game_id: '31' }),
      });
      return res.status;
    });
    expect(status).toBe(403);
    await page.goto(`${d.origin}/clusters`);
    await page.getByText('Nodes', { exact: true }).first().waitFor();
    expect(await page.locator('[data-testid^="weight-"]').count()).toBe(0);
  });

  it('imports 1,000 lines: 3 malformed, 2 duplicates, 995 created; then searches a list of server_ids', async () => {
    const page = await signIn('oscar', '/instances');
    const lines: string[] = [];
    for (let i = 0; i < 995; i++)
      lines.push(`db-${7000 + i} ${7000 + i} mysql 3306 ${i % 2 === 0 ? '31' : '32'}`);
    lines.splice(100, 0, 'only three fields');
    lines.splice(500, 0, 'db-x 7999 mysql');
    lines.splice(900, 0, 'db-y 8000 mysql 3306 31 extra-field');
    lines.push('again 5001 mysql 3306 31'); // already registered
    lines.push('db-7003 7003 mysql 3306 32'); // repeats an earlier line
    expect(lines).toHaveLength(1000);
    await page.getByTestId('import-open').click();
    await page.getByTestId('import-text').fill(lines.join('\n'));
    await page.getByTestId('import-run').click();
    await page.getByTestId('import-result').waitFor();
    const stat = (id: string) => page.getByTestId(id).locator('.ant-statistic-content-value').textContent();
    expect(await stat('import-created')).toBe('995');
    expect(await stat('import-duplicate')).toBe('2');
    expect(await stat('import-malformed')).toBe('3');
    await expect.poll(() => page.getByTestId('import-result').textContent()).toContain('only three fields');
    await shot(page, 'instances-import', 'en-US');
    await page.keyboard.press('Escape');

    await page.getByTestId('filter-server_id').fill('7001, 7002 7994,5002');
    await page.getByTestId('filter-search').click();
    await expect.poll(() => page.getByTestId('instances-total').textContent()).toBe('Total 4');
    expect(new URL(page.url()).searchParams.get('server_id')).toBe('7001, 7002 7994,5002');
    const names = await page
      .getByTestId('instances-table')
      .locator('tbody tr.ant-table-row td:nth-child(3)')
      .allTextContents();
    expect(names.sort()).toEqual(['5002', '7001', '7002', '7994']);
    // The link carries the filter: a fresh page shows the same rows.
    await page.reload();
    await expect.poll(() => page.getByTestId('instances-total').textContent()).toBe('Total 4');
    await shot(page, 'instances', 'en-US');

    for (const name of ['db-7001', 'db-7002']) {
      await page
        .getByRole('row', { name: new RegExp(`\\b${name}\\b`) })
        .locator('input[type="checkbox"]')
        .check();
    }
    await page.getByTestId('bulk-delete').click();
    await page.locator('.ant-modal-confirm').getByRole('button', { name: 'Delete' }).click();
    await expect.poll(() => page.getByTestId('instances-total').textContent()).toBe('Total 2');
    const left = await d.call('GET', '/api/v1/instances?server_id=7001,7002,7994,5002', d.adminToken);
    expect(left.json.items.map((i: { server_id: string }) => i.server_id).sort()).toEqual(['5002', '7994']);
  });

  it("shows a backup list and copies a backup's exact restore command", async () => {
    const listed = await d.call(
      'GET',
      '/api/v1/backups?server_id=5001&type=mysql&instance=3306',
      d.adminToken,
    );
    const full = listed.json.items.find((b: { file_name: string }) => b.file_name === 'full-20261126.tar.gz');
    const page = await signIn('oscar', '/instances?server_id=5001');
    await page.getByTestId('instances-table').getByText('mysql-5001').click();
    await page.getByTestId(`restore-${full.id}`).click();
    const expected = `ubackup restore --server ${d.origin} --token <YOUR_TOKEN> --server-id 5001 --type mysql --instance 3306 --at 2026-11-26T04:00:00.000Z`;
    await expect.poll(() => page.getByTestId('restore-command').textContent()).toBe(expected);
    await page.getByTestId('copy-restore').click();
    await expect.poll(() => page.evaluate(readClipboard)).toBe(expected);
    await page.keyboard.press('Escape');
    const table = page.getByTestId('backup-table');
    await expect.poll(() => table.textContent()).toContain('3.00 GiB');
    expect(await table.textContent()).toContain('52.0 MiB');
    expect(await table.textContent()).toContain('1.50 KiB');
    await shot(page, 'backups', 'en-US');
  });

  it('acknowledges an alert and the summary count drops', async () => {
    const summary = async () => (await d.call('GET', '/api/v1/alerts/summary', d.adminToken)).json;
    // Both instances' script_failed and overdue alerts, so no sweep changes the count under the test.
    await waitFor(async () => (await summary()).total_open >= 4, {
      timeoutMs: 30_000,
      what: 'four open alerts',
    });
    const before = await summary();
    const page = await signIn('oscar', '/alerts');
    const ack = page.locator('[data-testid^="ack-"]').first();
    await ack.waitFor();
    await shot(page, 'alerts', 'en-US');
    await ack.click();
    await page.getByTestId('action-comment').fill('known: the disk is being replaced');
    await page.getByTestId('action-ok').click();
    await expect.poll(async () => (await summary()).total_open).toBe(before.total_open - 1);
    expect((await summary()).total_acknowledged).toBe(before.total_acknowledged + 1);
    await expect.poll(() => page.getByText('known: the disk is being replaced').count()).toBeGreaterThan(0);
  });

  it("changes a node's weight in the page and the node's next heartbeat carries it", async () => {
    const enrolled = await d.call('POST', '/api/v1/nodes/enroll', d.enrollToken, {
      name: 'node-a',
      cluster: 'default',
      address: 'http://10.0.3.1:8081',
      weight: 4,
      reserve_bytes: 10 * GiB,
      version: '0.1.0',
    });
    expect(enrolled.status).toBe(201);
    const beat = () =>
      d.call('POST', '/api/v1/nodes/heartbeat', enrolled.json.credential, {
        disk_total_bytes: 500 * GiB,
        disk_free_bytes: 80 * GiB,
        reserve_bytes: 10 * GiB,
        paused_reserve: false,
        in_flight: [],
        bytes_per_second: 0,
        version: '0.1.0',
      });
    expect((await beat()).json.weight).toBe(4);
    const page = await signIn('oscar', '/clusters');
    const weight = page.getByTestId('weight-node-a').locator('input');
    await weight.fill('9');
    await weight.press('Enter');
    await expect.poll(async () => (await beat()).json.weight).toBe(9);
    await shot(page, 'clusters', 'en-US');
  });

  it('switches to Chinese, remembers it, and every page renders', async () => {
    const page = await signIn('alice');
    for (const [name, path] of [
      ['overview', '/'],
      ['businesses', '/businesses'],
      ['backup-types', '/backup-types'],
      ['users', '/users'],
      ['tokens', '/tokens'],
      ['audit', '/audit'],
    ] as const) {
      await page.goto(`${d.origin}${path}`);
      await page.locator('.ant-card').first().waitFor();
      await page.waitForLoadState('networkidle');
      await shot(page, name, 'en-US');
    }
    await page.getByTestId('user-menu').click();
    await page.getByText('Language').hover();
    await page.getByTestId('lang-zh-CN').click();
    await page.getByRole('link', { name: '告警' }).waitFor();
    await expect.poll(() => page.evaluate(sessionLocale)).toBe('zh-CN');
    await page.reload();
    await page.getByRole('link', { name: '实例' }).waitFor();
    for (const [name, path] of [
      ['overview', '/'],
      ['alerts', '/alerts'],
      ['instances', '/instances'],
      ['backups', '/instances?server_id=5001&backups=5001%2Fmysql%2F3306'],
      ['clusters', '/clusters'],
      ['stats', '/stats'],
      ['businesses', '/businesses'],
      ['backup-types', '/backup-types'],
      ['users', '/users'],
      ['tokens', '/tokens'],
      ['audit', '/audit'],
    ] as const) {
      await page.goto(`${d.origin}${path}`);
      await page.locator('.ant-card, .ant-drawer').first().waitFor();
      await page.waitForLoadState('networkidle');
      if (name === 'stats') await page.getByText('每日备份数（按业务）').waitFor();
      await shot(page, name, 'zh-CN');
    }
    expect(await page.getByText('审计日志').count()).toBeGreaterThan(0);

    await page.getByTestId('user-menu').click();
    await page.getByTestId('logout').click();
    await page.getByRole('button', { name: /登\s*录/ }).waitFor();
    await shot(page, 'login', 'zh-CN');
  });

  it('lists the alerts of followed businesses first, with a red tag', async () => {
    const page = await signIn('lin', '/alerts');
    const followed = page.getByTestId('alerts-followed');
    const others = page.getByTestId('alerts-others');
    await others.getByText('5001/mysql/3306').first().waitFor();
    expect(await followed.getByText('5001/mysql/3306').count()).toBe(0);
    await page.getByTestId('focus-open').click();
    await page.getByRole('button', { name: 'Select none' }).click();
    await page.getByLabel('31 · Dragon Realm').check();
    await page.getByTestId('focus-save').click();
    await followed.getByText('5001/mysql/3306').first().waitFor();
    expect(await followed.locator('.ant-tag-red', { hasText: 'followed' }).count()).toBeGreaterThan(0);
    expect(await others.getByText('5001/mysql/3306').count()).toBe(0);
    const focus = await page.evaluate(async () => (await fetch('/api/v1/me/focus')).json());
    expect(focus).toEqual({ businesses: ['31'] });
    // The alert links to the instance's backups.
    await followed.getByTestId('alert-backups-link').first().click();
    await page.getByTestId('backup-table').waitFor();
    expect(new URL(page.url()).searchParams.get('backups')).toBe('5001/mysql/3306');
  });

  it('adds an instance with the form and pauses it', async () => {
    const page = await signIn('oscar', '/instances');
    await page.getByTestId('add-instance').click();
    const form = page.locator('.ant-modal').filter({ hasText: 'Add instance' });
    await form.getByLabel('Name').fill('redis-6001');
    await form.getByLabel('Business').fill('32');
    await form.getByLabel('server_id').fill('6001');
    await form.getByLabel('Type').fill('redis');
    await form.getByLabel('Instance').fill('6379');
    await form.getByRole('button', { name: 'OK' }).click();
    await page.getByTestId('filter-server_id').fill('6001');
    await page.getByTestId('filter-search').click();
    await expect.poll(() => page.getByTestId('instances-total').textContent()).toBe('Total 1');
    const made = (await d.call('GET', '/api/v1/instances?server_id=6001', d.adminToken)).json.items[0];
    expect(made).toMatchObject({
      name: 'redis-6001',
      type: 'redis',
      instance: '6379',
      game_id: '32',
      paused: false,
    });
    await page.getByTestId(`pause-${made.id}`).click();
    await expect
      .poll(
        async () =>
          (await d.call('GET', '/api/v1/instances?server_id=6001', d.adminToken)).json.items[0].paused,
      )
      .toBe(true);
  });

  it('creates a personal API token, shows it once with a copy button, and the token works', async () => {
    const page = await signIn('lin', '/tokens');
    await page.getByRole('button', { name: 'New token' }).click();
    const form = page.locator('.ant-modal').filter({ hasText: 'Expires in days' });
    await form.getByLabel('Name').fill('laptop script');
    await form.getByLabel('Expires in days (empty: never)').fill('30');
    await form.getByRole('button', { name: 'OK' }).click();
    const shown = (await page.getByTestId('new-token').textContent())?.trim() ?? '';
    expect(shown).toMatch(/^ubt_/);
    await page.getByTestId('copy-token').click();
    await expect.poll(() => page.evaluate(readClipboard)).toBe(shown);
    const me = await d.call('GET', '/api/v1/me', shown);
    expect(me.status).toBe(200);
    expect(me.json.user.name).toBe('lin');
    await page
      .locator('.ant-modal')
      .filter({ hasText: 'Your new token' })
      .locator('.ant-modal-footer')
      .getByRole('button', { name: 'Close' })
      .click();
    await page.getByRole('cell', { name: 'laptop script' }).waitFor();
  });

  it('shows a uniqueness error inline on a business', async () => {
    const page = await signIn('oscar', '/businesses');
    await page.getByTestId('registry-add').click();
    await page.getByTestId('registry-game_id').fill('31');
    await page.getByTestId('registry-name').fill('Copy of Dragon Realm');
    await page.getByTestId('registry-ok').click();
    await expect
      .poll(() => page.locator('.ant-form-item-explain-error').first().textContent())
      .toBe('game_id "31" is already registered');
  });

  it('loads the sign-in page and the overview with under 600 kB of gzipped JavaScript, other pages only when opened', async () => {
    const scripts = new Set<string>();
    const watch = (page: Page) =>
      page.on('response', (r) => {
        const path = new URL(r.url()).pathname;
        if (path.endsWith('.js')) scripts.add(path);
      });
    const anonymous = await browser.newContext({ locale: 'en-US' });
    contexts.push(anonymous);
    const login = await anonymous.newPage();
    watch(login);
    await login.goto(`${d.origin}/login`);
    await login.getByRole('button', { name: 'Sign in' }).waitFor();
    // A user of its own: another test signs alice out, which ends her saved session.
    await createUser(d.pc, 'bo', 'viewer');
    await signIn('bo');
    // A new context with bo's session: nothing cached, the overview is the first page.
    const fresh = await browser.newContext({ locale: 'en-US', storageState: signedIn.get('bo') });
    contexts.push(fresh);
    const page = await fresh.newPage();
    watch(page);
    await page.goto(`${d.origin}/`);
    await page.getByTestId('kpi-backups').waitFor();
    // The trend chart (ECharts, loaded after the tiles) is part of the first page too.
    await page.getByTestId('overview-trend').locator('canvas').first().waitFor();
    const names = [...scripts].map((p) => p.slice(p.lastIndexOf('/') + 1));
    expect(names.some((n) => n.startsWith('overview-page-'))).toBe(true);
    // Code splitting: no other page's chunk came with these two.
    expect(
      names.filter((n) => /^(instances|alerts|clusters|users|audit|tokens|stats)-page-/.test(n)),
    ).toEqual([]);
    let gzipped = 0;
    for (const path of scripts) {
      const res = await fetch(`${d.origin}${path}`);
      expect(res.status, path).toBe(200);
      gzipped += gzipSync(Buffer.from(await res.arrayBuffer()), { level: 9 }).length;
    }
    expect(gzipped).toBeGreaterThan(50_000);
    expect(gzipped).toBeLessThan(600_000);
  });

  it('shows times in the time zone the user picks, and keeps it for the next visit', async () => {
    await createUser(d.pc, 'tao', 'viewer');
    const page = await signIn('tao', '/');
    const backups = await d.call(
      'GET',
      '/api/v1/backups?server_id=5001&type=mysql&instance=3306',
      d.adminToken,
    );
    const full = (backups.json.items as { kind: string; backup_time: string }[]).find(
      (b) => b.kind === 'full',
    );
    if (!full) throw new Error('the seed has no full backup');
    const inZone = (iso: string, timeZone: string) =>
      new Intl.DateTimeFormat('sv-SE', {
        timeZone,
        year: 'numeric',
        month: '2-digit',
        day: '2-digit',
        hour: '2-digit',
        minute: '2-digit',
        second: '2-digit',
        hourCycle: 'h23',
      }).format(new Date(iso));
    const shanghai = inZone(full.backup_time, 'Asia/Shanghai');
    expect(shanghai).not.toBe(inZone(full.backup_time, 'UTC'));
    await page
      .getByRole('cell', { name: inZone(full.backup_time, 'UTC') })
      .first()
      .waitFor();

    await page.getByTestId('user-menu').click();
    await page.getByText('Time zone: UTC').click();
    const dialog = page.getByRole('dialog');
    await dialog.getByRole('combobox').fill('Asia/Shanghai');
    await page.locator('.ant-select-item-option[title="Asia/Shanghai"]').click();
    await dialog.getByRole('button', { name: 'OK' }).click();
    await page.getByRole('cell', { name: shanghai }).first().waitFor();
    expect(await page.evaluate(sessionZone)).toBe('Asia/Shanghai');

    // Another browser, same user: the zone came with the account.
    const other = await browser.newContext({ locale: 'en-US', storageState: signedIn.get('tao') });
    contexts.push(other);
    const again = await other.newPage();
    await again.goto(`${d.origin}/`);
    await again.getByRole('cell', { name: shanghai }).first().waitFor();
    await again.getByTestId('user-menu').click();
    await again.getByText('Time zone: Asia/Shanghai').waitFor();
  });

  it('resolves an alert with a comment, and mutes an instance from its alert', async () => {
    // The browser runs in New York; oscar's zone is UTC: the mute time picked is UTC's.
    const page = await signIn('oscar', '/alerts?state=open', 'America/New_York');
    const resolve = page.locator('[data-testid^="resolve-"]').first();
    await resolve.waitFor();
    const id = Number((await resolve.getAttribute('data-testid'))?.slice('resolve-'.length));
    await resolve.click();
    // A comment is required.
    await page.getByTestId('action-ok').click();
    await page.getByText('Write a comment').waitFor();
    await page.getByTestId('action-comment').fill('fixed by hand');
    await page.getByTestId('action-ok').click();
    await expect
      .poll(async () => (await d.call('GET', `/api/v1/alerts/${id}`, d.adminToken)).json.state)
      .toBe('resolved');

    const row = page.locator('tr').filter({ hasText: '5002/mysql/3307' }).first();
    await row.locator('[data-testid^="mute-"]').click();
    const picker = page.locator('.ant-modal .ant-picker input');
    await page.getByText('Mute the instance until (UTC)').waitFor();
    await picker.fill('2030-01-02 03:04:05');
    await picker.press('Enter');
    await page.getByTestId('action-comment').fill('host being rebuilt');
    await page.getByTestId('action-ok').click();
    const muted = async () =>
      (await d.call('GET', '/api/v1/instances?server_id=5002', d.adminToken)).json.items[0].muted_until;
    await expect.poll(muted).toBe('2030-01-02T03:04:05.000Z');
    await page.goto(`${d.origin}/instances?server_id=5002`);
    await page.getByText('2030-01-02 03:04:05').waitFor();
  });

  it('draws the statistics from the rollups, and exports a chart as the CSV of what it draws', async () => {
    const page = await signIn('vera', '/stats');
    const totals = (await d.call('GET', '/api/v1/stats/totals', d.adminToken)).json;
    expect(totals.backups).toBeGreaterThanOrEqual(10);
    await expect
      .poll(() => page.getByTestId('stats-total-backups').locator('.ant-statistic-content').textContent())
      .toBe(String(totals.backups));
    await expect
      .poll(() => page.getByTestId('stats-total-failures').locator('.ant-statistic-content').textContent())
      .toBe(String(totals.failures));
    for (const chart of ['chart-backups-business', 'chart-bytes-business', 'chart-queue']) {
      await page.getByTestId(chart).locator('canvas').first().waitFor();
    }
    // Nothing is stored yet in this catalog: the share of stored bytes says so instead of drawing zeros.
    await expect.poll(() => page.getByTestId('chart-share').textContent()).toContain('No data in this range');
    await shot(page, 'stats', 'en-US');

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByTestId('chart-backups-business-csv').click(),
    ]);
    expect(download.suggestedFilename()).toBe('backups-by-business.csv');
    const path = await download.path();
    const lines = (await readFile(path, 'utf8'))
      .replace(/^\ufeff/, '')
      .trim()
      .split('\r\n');
    const header = (lines[0] ?? '').split(',');
    expect(header[0]).toBe('day');
    expect(header.slice(1).sort()).toEqual(['31', '32']);
    const drawn = lines.slice(1).flatMap((l) => l.split(',').slice(1).map(Number));
    expect(drawn.reduce((a, b) => a + b, 0)).toBe(totals.backups);
    const daily = (await d.call('GET', '/api/v1/stats/daily?by=business&business=31', d.adminToken)).json;
    const nov25 = daily.items.find((i: { day: string }) => i.day.startsWith('2026-11-25'));
    const row = lines.find((l) => l.startsWith('2026-11-25,'))?.split(',') ?? [];
    expect(Number(row[header.indexOf('31')])).toBe(nov25.backups);

    // A filter is kept in the address and narrows every figure.
    await page.goto(`${d.origin}/stats?business=31`);
    const only31 = (await d.call('GET', '/api/v1/stats/totals?business=31', d.adminToken)).json;
    expect(only31.backups).toBeLessThan(totals.backups);
    await expect
      .poll(() => page.getByTestId('stats-total-backups').locator('.ant-statistic-content').textContent())
      .toBe(String(only31.backups));
    await page.getByTestId('chart-type').locator('canvas').first().waitFor();
  });
});
