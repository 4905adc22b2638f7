import { readFile, stat } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';

/**
 * The dashboard as `vite build` leaves it in `dist/web/`: `index.html` for
 * every page of the single-page app, and content-hashed files under `assets/`.
 */

/** `dist/web/`, next to the compiled server (`dist/src/server/web-bundle.js`). */
export function defaultWebDir(): string {
  return fileURLToPath(new URL('../../web/', import.meta.url));
}

/** What every HTML answer carries. */
export const HTML_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'same-origin',
};

export const ASSET_CACHE_CONTROL = 'public, max-age=31536000, immutable';
export const NOT_BUILT_MESSAGE = 'the dashboard is not built: run npm run build';

/** Paths that are never pages of the dashboard, even for a browser asking for HTML. */
const NOT_PAGES = ['/api/', '/healthz', '/metrics', '/docs', '/assets/'];

/** One path segment of a bundle file: no dot first (so neither `..` nor hidden files), no separators. */
const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;

/** The bundle-relative file a URL path names, or null when it cannot name one. */
export function bundlePath(path: string): string | null {
  if (path === '' || path.length > 512) return null;
  const segments = path.split('/');
  return segments.every((s) => SEGMENT.test(s)) ? segments.join('/') : null;
}

/** Whether a GET for this path should get the single-page app's index.html. */
export function wantsPage(path: string, accept: string | undefined): boolean {
  if (NOT_PAGES.some((prefix) => path === prefix.replace(/\/$/, '') || path.startsWith(prefix))) return false;
  return (accept ?? '').toLowerCase().includes('text/html');
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/**
 * Serves the built dashboard from `webDir`: `/` and any page path (a GET that
 * accepts HTML) get index.html, never cached; `/assets/*` is cached for a
 * year (its names change with its content). No listings; nothing outside
 * `webDir` can be named. Without index.html, `/` answers 503.
 */
export function webBundleRoutes(webDir: string): FastifyPluginAsync {
  const root = isAbsolute(webDir) ? webDir : resolve(webDir);
  const assets = join(root, 'assets');

  async function sendIndex(reply: FastifyReply): Promise<FastifyReply> {
    let html: Buffer;
    try {
      html = await readFile(join(root, 'index.html'));
    } catch {
      return reply
        .code(503)
        .header('cache-control', 'no-cache')
        .type('text/plain; charset=utf-8')
        .send(`${NOT_BUILT_MESSAGE}\n`);
    }
    return reply
      .headers(HTML_SECURITY_HEADERS)
      .header('cache-control', 'no-cache')
      .type('text/html; charset=utf-8')
      .send(html);
  }

  return async (app) => {
    await app.register(fastifyStatic, {
      root,
      serve: false,
      index: false,
      list: false,
      dotfiles: 'deny',
      cacheControl: false,
    });

    app.get('/', { config: { access: 'public' }, schema: { hide: true } }, (_request, reply) =>
      sendIndex(reply),
    );

    app.get(
      '/assets/*',
      { config: { access: 'public' }, schema: { hide: true } },
      async (request: FastifyRequest<{ Params: { '*': string } }>, reply) => {
        const file = bundlePath(request.params['*']);
        if (file === null || !(await isFile(join(assets, file)))) return reply.callNotFound();
        return reply
          .header('cache-control', ASSET_CACHE_CONTROL)
          .header('x-content-type-options', 'nosniff')
          .sendFile(file, assets);
      },
    );

    app.get(
      '/*',
      { config: { access: 'public' }, schema: { hide: true } },
      async (request: FastifyRequest<{ Params: { '*': string } }>, reply) => {
        const path = (request.url.split('?')[0] ?? '/').replace(/\/{2,}/g, '/');
        // A file at the bundle's top (favicon and the like): one segment, and there.
        const file = bundlePath(request.params['*']);
        if (
          file !== null &&
          !file.includes('/') &&
          file !== 'index.html' &&
          (await isFile(join(root, file)))
        ) {
          return reply
            .header('cache-control', 'no-cache')
            .header('x-content-type-options', 'nosniff')
            .sendFile(file);
        }
        if (wantsPage(path, request.headers.accept)) return sendIndex(reply);
        return reply.callNotFound();
      },
    );
  };
}
