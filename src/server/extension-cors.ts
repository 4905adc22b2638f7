import type { FastifyPluginAsync } from 'fastify';

/**
 * The browser extension calls the API from a `chrome-extension://<id>` page
 * with `Authorization: Bearer <personal token>`. Such origins get CORS
 * answers: preflights allow the Authorization and Content-Type headers, and
 * answers name the origin. Credentials (cookies) are never allowed, so the
 * dashboard's session cannot be used from anywhere but the dashboard itself.
 * Web origins get no CORS headers at all.
 */
export const EXTENSION_ORIGIN = /^chrome-extension:\/\/[a-p]{32}$/;

export const PREFLIGHT_MAX_AGE_SECONDS = 600;

export function isExtensionOrigin(origin: string | undefined): origin is string {
  return typeof origin === 'string' && EXTENSION_ORIGIN.test(origin);
}

/** The CORS headers an API answer carries for this request's origin (none for anything but the extension). */
export function extensionCorsHeaders(origin: string | undefined, url: string): Record<string, string> {
  if (!isExtensionOrigin(origin) || !url.startsWith('/api/')) return {};
  return { 'access-control-allow-origin': origin, vary: 'Origin' };
}

/** `OPTIONS /api/*`: the preflight of the extension's requests. */
export function extensionCorsRoutes(): FastifyPluginAsync {
  return async (app) => {
    app.options(
      '/api/*',
      { config: { access: 'public' }, schema: { hide: true } },
      async (request, reply) => {
        if (isExtensionOrigin(request.headers.origin)) {
          reply.headers({
            'access-control-allow-methods': 'GET, POST, PUT, PATCH, DELETE',
            'access-control-allow-headers': 'Authorization, Content-Type',
            'access-control-max-age': String(PREFLIGHT_MAX_AGE_SECONDS),
          });
        }
        return reply.code(204).send();
      },
    );
  };
}
