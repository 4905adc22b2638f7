import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const manifest = JSON.parse(
  readFileSync(join(import.meta.dirname, '../../extension/manifest.json'), 'utf8'),
) as Record<string, unknown>;

describe('the extension manifest', () => {
  it('asks for storage, alarms and notifications, and for a server origin only when the user saves it', () => {
    expect(manifest.manifest_version).toBe(3);
    expect(manifest.permissions).toEqual(['storage', 'alarms', 'notifications']);
    expect(manifest.optional_host_permissions).toEqual(['http://*/*', 'https://*/*']);
    expect(manifest).not.toHaveProperty('host_permissions');
    expect(manifest).not.toHaveProperty('content_scripts');
  });

  it('runs a module service worker, an options page and a popup, localized', () => {
    expect(manifest.background).toEqual({ service_worker: 'background.js', type: 'module' });
    expect(manifest.options_ui).toMatchObject({ page: 'options.html' });
    expect(manifest.action).toMatchObject({ default_popup: 'popup.html' });
    expect(manifest.default_locale).toBe('en');
    expect(manifest.name).toBe('__MSG_extName__');
  });
});
