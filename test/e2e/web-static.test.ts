import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type TestApp, testApp } from '../support/catalog-backends.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';

const INDEX =
  '<!doctype html><html><head><script type="module" src="/assets/app-3f2a.js"></script></head></html>\n';
const SCRIPT = 'console.log("dashboard");\n';
const SECRET = 'not part of the bundle';
const CSP =
  "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'";
const HTML = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';

describe('the built dashboard', () => {
  let dir: TempDir;
  let env: TestApp;
  let webDir: string;

  beforeEach(async () => {
    dir = await makeTempDir('ubackup-web');
    webDir = join(dir.path, 'web');
    await mkdir(join(webDir, 'assets'), { recursive: true });
    await writeFile(join(webDir, 'index.html'), INDEX);
    await writeFile(join(webDir, 'assets', 'app-3f2a.js'), SCRIPT);
    await writeFile(join(webDir, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    await writeFile(join(webDir, '.env'), SECRET);
    await writeFile(join(dir.path, 'package.json'), SECRET);
    await writeFile(join(dir.path, 'secret.txt'), SECRET);
    env = await testApp('sqlite', { webDir });
  });
  afterEach(async () => {
    await env.cleanup();
    await dir.cleanup();
  });

  const get = (url: string, accept = HTML) => env.app.inject({ method: 'GET', url, headers: { accept } });

  it('serves index.html at / with no-cache and the security headers', async () => {
    const res = await get('/', '*/*');
    expect(res.statusCode).toBe(200);
    expect(res.body).toBe(INDEX);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.headers['cache-control']).toBe('no-cache');
    expect(res.headers['content-security-policy']).toBe(CSP);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['referrer-policy']).toBe('same-origin');
  });

  it("answers the app's own paths with index.html when a browser asks for a page", async () => {
    for (const url of ['/alerts', '/users/7', '/backups?server_id=111111', '/audit/']) {
      const res = await get(url);
      expect(res.statusCode, url).toBe(200);
      expect(res.body).toBe(INDEX);
      expect(res.headers['cache-control']).toBe('no-cache');
      expect(res.headers['content-security-policy']).toBe(CSP);
    }
    // Not a page: a script asking for JSON, and everything under the API, health and assets.
    expect((await get('/alerts', 'application/json')).statusCode).toBe(404);
    for (const url of [
      '/api/v1/nothing',
      '/api/',
      '/healthz/x',
      '/metrics/x',
      '/docs',
      '/assets/missing.js',
    ]) {
      const res = await get(url);
      expect(res.statusCode, url).toBe(404);
      expect(res.json()).toMatchObject({ error: { code: 'not_found' } });
    }
    // The API still answers as before.
    expect((await get('/healthz', '*/*')).statusCode).toBe(200);
    expect((await get('/api/v1/me', HTML)).statusCode).toBe(401);
    // Prometheus metrics: asks for a token, never the page.
    const metrics = await get('/metrics');
    expect(metrics.statusCode).toBe(401);
    expect(metrics.body).not.toBe(INDEX);
  });

  it('serves assets for a year, immutable; top-level files uncached', async () => {
    const res = await get('/assets/app-3f2a.js', '*/*');
    expect(res.statusCode).toBe(200);
    expect(res.body).toBe(SCRIPT);
    expect(res.headers['content-type']).toMatch(/javascript/);
    expect(res.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    const icon = await get('/favicon.svg', '*/*');
    expect(icon.statusCode).toBe(200);
    expect(icon.headers['cache-control']).toBe('no-cache');
    const head = await env.app.inject({ method: 'HEAD', url: '/assets/app-3f2a.js' });
    expect(head.statusCode).toBe(200);
  });

  it('lists no directory and serves nothing outside the bundle, nor hidden files', async () => {
    for (const url of [
      '/assets/',
      '/assets',
      '/../package.json',
      '/../secret.txt',
      '/assets/..%2f..%2fpackage.json',
      '/assets/..%2f..%2fsecret.txt',
      '/assets/%2e%2e/%2e%2e/secret.txt',
      '/assets/../../secret.txt',
      '/%2e%2e/secret.txt',
      '/..%2fsecret.txt',
      '/.env',
      '/assets/.%2e/index.html',
    ]) {
      for (const accept of ['*/*', HTML]) {
        const res = await get(url, accept);
        expect(res.body, `${url} (${accept})`).not.toContain(SECRET);
        expect(res.body, `${url} (${accept})`).not.toContain('Index of');
        // A browser asking for a page may get the app; anything else is refused.
        if (res.statusCode === 200) expect(res.body).toBe(INDEX);
        else expect(res.statusCode).toBeGreaterThanOrEqual(400);
      }
    }
  });

  it('answers 503 at / while the dashboard is not built', async () => {
    const empty = await makeTempDir('ubackup-web-empty');
    const unbuilt = await testApp('sqlite', { webDir: empty.path });
    try {
      const res = await unbuilt.app.inject({ method: 'GET', url: '/', headers: { accept: HTML } });
      expect(res.statusCode).toBe(503);
      expect(res.headers['content-type']).toMatch(/^text\/plain/);
      expect(res.body.trim()).toBe('the dashboard is not built: run npm run build');
      const page = await unbuilt.app.inject({ method: 'GET', url: '/alerts', headers: { accept: HTML } });
      expect(page.statusCode).toBe(503);
      const missingDir = await testApp('sqlite', { webDir: join(empty.path, 'does-not-exist') });
      try {
        expect((await missingDir.app.inject({ method: 'GET', url: '/' })).statusCode).toBe(503);
      } finally {
        await missingDir.cleanup();
      }
    } finally {
      await unbuilt.cleanup();
      await empty.cleanup();
    }
  });
});
