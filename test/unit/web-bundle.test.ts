import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_SERVER_FLAGS, resolveServerSettings } from '../../src/server/server-settings.js';
import { bundlePath, defaultWebDir, wantsPage } from '../../src/server/web-bundle.js';

const FLAGS = { ...DEFAULT_SERVER_FLAGS, listen: '127.0.0.1:8080', dataDir: '/tmp/ubackup-test' };

describe('the dashboard bundle', () => {
  it('lives in web/ two levels above the compiled module (dist/web for dist/src/server/)', () => {
    expect(defaultWebDir()).toBe(`${join(import.meta.dirname, '..', '..', 'web')}/`);
  });

  it('takes --web-dir / UBACKUP_WEB_DIR, resolved to an absolute path', () => {
    expect(resolveServerSettings(FLAGS).webDir).toBe(defaultWebDir());
    expect(resolveServerSettings({ ...FLAGS, webDir: '/srv/ubackup/web' }).webDir).toBe('/srv/ubackup/web');
    expect(resolveServerSettings({ ...FLAGS, webDir: 'web-build' }).webDir).toBe(
      join(process.cwd(), 'web-build'),
    );
  });

  it('names only plain files inside the bundle', () => {
    expect(bundlePath('app-3f2a.js')).toBe('app-3f2a.js');
    expect(bundlePath('fonts/a.woff2')).toBe('fonts/a.woff2');
    for (const bad of ['', '../x', 'a/../../x', '..', '.env', 'a//b', 'a/', '/etc/passwd', 'a\\b', 'a%2fb']) {
      expect(bundlePath(bad), bad).toBeNull();
    }
  });

  it('treats a GET as a page when it accepts HTML and is not API, health, metrics, docs or assets', () => {
    expect(wantsPage('/alerts', 'text/html')).toBe(true);
    expect(wantsPage('/alerts', 'application/json')).toBe(false);
    expect(wantsPage('/alerts', undefined)).toBe(false);
    for (const path of ['/api/v1/x', '/api', '/healthz', '/metrics', '/docs/x', '/assets/x.js']) {
      expect(wantsPage(path, 'text/html'), path).toBe(false);
    }
  });
});
