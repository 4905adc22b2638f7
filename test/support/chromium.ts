import { type Browser, type BrowserContext, chromium } from 'playwright-core';
import { INSTALL_HINTS, requireTool } from './required-tool.js';
import { makeTempDir } from './temp-dir.js';

/** Debian's Chromium: the tests never download a browser. */
export const CHROMIUM_PATH = '/usr/bin/chromium';

/**
 * Flags for a closed network: without the background-networking ones Chromium keeps
 * trying to reach Google's hosts. Playwright adds --headless and its own.
 */
export const CHROMIUM_ARGS: readonly string[] = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/** A headless Chromium for pages; close it in afterAll. */
export async function launchChromium(): Promise<Browser> {
  requireTool('chromium', INSTALL_HINTS.chromium);
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: [...CHROMIUM_ARGS] });
}

export interface ExtensionBrowser {
  context: BrowserContext;
  /** Closes the browser and removes its profile. */
  close(): Promise<void>;
}

/** Chromium with one unpacked extension loaded, in a fresh profile (extensions need a persistent context). */
export async function launchChromiumWithExtension(extensionDir: string): Promise<ExtensionBrowser> {
  requireTool('chromium', INSTALL_HINTS.chromium);
  const profile = await makeTempDir('ubackup-chromium-profile');
  const context = await chromium.launchPersistentContext(profile.path, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      ...CHROMIUM_ARGS,
      `--disable-extensions-except=${extensionDir}`,
      `--load-extension=${extensionDir}`,
    ],
  });
  return {
    context,
    async close() {
      await context.close().catch(() => undefined);
      await profile.cleanup();
    },
  };
}
