import type { Context } from 'koa';
import { AuthError } from '../errors';

/** An opaque cursor: the position, as JSON in base64url. Clients pass it back untouched. */
export function encodeCursor(position: unknown): string {
  return Buffer.from(JSON.stringify(position), 'utf8').toString('base64url');
}

/** The position a cursor holds, when `accept` takes it; otherwise 400 against `/query/cursor`. */
export function decodeCursor<T>(cursor: string, accept: (value: unknown) => value is T): T {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    value = undefined;
  }
  if (!accept(value)) {
    throw new AuthError('invalid_request', 'Invalid query: /query/cursor is not a cursor this server gave.', {
      errors: [{ pointer: '/query/cursor', message: 'is not a cursor this server gave' }],
    });
  }
  return value;
}

/**
 * Sets `Link: <path?query&cursor=...>; rel="next"` (RFC 8288 §3) for the next page: the same path
 * and query parameters with the new cursor, as a relative reference, so it is right behind a
 * proxy too.
 */
export function setNextLink(ctx: Context, query: Record<string, unknown>, cursor: string): void {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (name !== 'cursor' && (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')) params.set(name, String(value));
  }
  params.set('cursor', cursor);
  ctx.set('Link', `<${ctx.path}?${params.toString()}>; rel="next"`);
}
