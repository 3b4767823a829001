import { createHash, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import type { Logger } from '../services/logger';
import type { Metrics } from '../services/metrics';

export interface MetricsEndpointOptions {
  metrics: Pick<Metrics, 'render' | 'contentType'>;
  /** When set, a scrape must send `Authorization: Bearer <token>`. */
  token?: string | undefined;
  logger: Logger;
}

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/** Whether `header` is `Bearer <token>` for the token whose digest is `expected`, in constant time. */
function bearerMatches(header: string | undefined, expected: Buffer): boolean {
  const given = /^Bearer +([^\s]+) *$/i.exec(header ?? '')?.[1];
  // Digests are of equal length whatever was sent (timingSafeEqual needs that), so neither the
  // comparison nor its length tells anything about the token.
  const same = timingSafeEqual(sha256(given ?? ''), expected);
  return given !== undefined && same;
}

function reply(res: http.ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff', ...headers });
  res.end(`${text}\n`);
}

/**
 * The metrics listener's only answer: `GET /metrics` (and HEAD) in Prometheus' text format,
 * behind the bearer token when one is set; 404 for any other path, 405 for other methods. It is
 * served on a listener of its own (`METRICS_PORT`, bound to `METRICS_HOST`), never on the main
 * port, so the metrics are not public unless an operator makes them so.
 */
export function metricsEndpoint(opts: MetricsEndpointOptions): http.RequestListener {
  const { metrics, logger } = opts;
  const expected = opts.token === undefined ? undefined : sha256(opts.token);
  return (req, res) => {
    const path = (req.url ?? '').split('?', 1)[0];
    if (path !== '/metrics') return reply(res, 404, 'Not found: the metrics are at /metrics.');
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(res, 405, 'Method not allowed.', { Allow: 'GET, HEAD' });
    // RFC 6750 §3: a challenge with every 401.
    if (expected !== undefined && !bearerMatches(req.headers.authorization, expected)) {
      return reply(res, 401, 'A bearer token is required.', { 'WWW-Authenticate': 'Bearer realm="metrics"' });
    }
    metrics.render().then(
      (body) => {
        res.writeHead(200, { 'Content-Type': metrics.contentType, 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (err: unknown) => {
        logger.error({ err }, 'collecting the metrics failed');
        reply(res, 500, 'Collecting the metrics failed.');
      },
    );
  };
}
