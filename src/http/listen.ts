import http from 'node:http';
import net, { type Socket } from 'node:net';
import type { HttpLimits } from '../config';
import type { Logger } from '../services/logger';
import { parserRefusalResponse } from './parser-refusal';

/** How a {@link Listening.shutdown} ended. */
export type ShutdownOutcome = 'clean' | 'timeout';

export interface ListenOptions {
  host: string;
  /** 0 picks a free port; {@link Listening.port} says which. */
  port: number;
  limits: HttpLimits;
  /** Milliseconds from the shutdown call until every connection left is destroyed. */
  shutdownTimeout: number;
  logger: Logger;
  /** Called first on shutdown, so readiness turns 503 while the listener still accepts. */
  onDrain?: () => void;
  /**
   * Milliseconds a keep-alive connection must have been idle during a shutdown before it is
   * closed (default 500). A client under load sends its next request within milliseconds and
   * gets an answer with `Connection: close` instead of a reset.
   */
  idleGrace?: number;
}

export interface Listening {
  server: http.Server;
  /** The port listened on (the one picked when `port` was 0). */
  port: number;
  /**
   * Drains and stops: readiness 503 (`onDrain`) while serving as before for
   * `shutdownDrainDelay`; then no new connections, every request already accepted finishes and
   * answers say `Connection: close`, and connections idle for `idleGrace` are closed. Resolves
   * `clean` once every connection has closed, or `timeout` when `shutdownTimeout` (counted from
   * this call) came first and the connections left were destroyed. Later calls return the
   * first call's promise.
   */
  shutdown: () => Promise<ShutdownOutcome>;
}

const DEFAULT_IDLE_GRACE_MS = 500;
/** Lines about refused connections, at most one per this many milliseconds. */
const DROP_LOG_INTERVAL_MS = 10_000;

/** What is known of one accepted connection. */
interface Connection {
  /** Responses started on it and not yet closed. */
  readonly responses: Set<http.ServerResponse>;
  /** When it last had a request in flight or received a byte (ms since the epoch). */
  lastActive: number;
  /** `socket.bytesRead` when last looked at, to see bytes of a request head still arriving. */
  bytesRead: number;
  /** Its connection-idle timer is still set: no request head has arrived yet. */
  awaitingFirstRequest: boolean;
}

/**
 * Creates the HTTP server for `handler` with the socket limits of `opts.limits`, listens, and
 * returns it with a graceful {@link Listening.shutdown}.
 */
export async function listen(handler: http.RequestListener, opts: ListenOptions): Promise<Listening> {
  const { limits, logger } = opts;
  const idleGrace = Math.min(opts.idleGrace ?? DEFAULT_IDLE_GRACE_MS, limits.keepAliveTimeout);
  const server = http.createServer({
    headersTimeout: limits.headersTimeout,
    requestTimeout: limits.requestTimeout,
    keepAliveTimeout: limits.keepAliveTimeout,
    // Node enforces headersTimeout and requestTimeout only when this timer looks, every 30 s by
    // default: a body sent slowly got its 408 after 305 s instead of 30 (issue #10). Looking
    // twice per headersTimeout, at most every second, keeps each bound within about a second.
    connectionsCheckingInterval: Math.max(1, Math.min(1_000, Math.floor(limits.headersTimeout / 2))),
  });
  server.maxConnections = limits.maxConnections;

  const connections = new Map<Socket, Connection>();
  let stopping = false;

  server.on('connection', (socket: Socket) => {
    const conn: Connection = { responses: new Set(), lastActive: Date.now(), bytesRead: 0, awaitingFirstRequest: true };
    connections.set(socket, conn);
    socket.once('close', () => connections.delete(socket));
    // Node's headersTimeout runs only from the first byte of a request, so a connection that
    // never sends one stayed open for good (issue #10 saw 200+ s). The socket's own inactivity
    // timer covers it: on 'timeout' Node's http server destroys the socket (as long as the
    // server has no 'timeout' listener of its own), and its parser re-arms the timer on every
    // chunk it reads, though a socket it consumes emits no 'data'.
    socket.setTimeout(limits.connectionIdleTimeout);
  });

  // Registered before the handler, so a response made during a shutdown already has its
  // Connection: close when the handler starts writing.
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const conn = connections.get(req.socket);
    if (conn === undefined) return;
    if (conn.awaitingFirstRequest) {
      // A head arrived: from here Node's own timers (request, then keep-alive) take over. Node
      // sets the keep-alive timer only after this first answer, so nothing of Node's is cleared.
      conn.awaitingFirstRequest = false;
      req.socket.setTimeout(0);
    }
    if (stopping) res.setHeader('Connection', 'close');
    conn.responses.add(res);
    res.once('close', () => {
      conn.responses.delete(res);
      conn.lastActive = Date.now();
      conn.bytesRead = req.socket.bytesRead;
    });
  });
  server.on('request', handler);

  // What Node's parser refuses (a 431 header overflow, a malformed request line or header, a
  // request past HEADERS_TIMEOUT or REQUEST_TIMEOUT) it answers itself with a bare status line
  // and no body; with a listener here the answer is ours: the same status, as problem+json.
  const refused = new WeakSet<Socket>();
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    // The parser reports each later chunk again once it has failed: one answer per connection.
    if (refused.has(socket)) return;
    refused.add(socket);
    const conn = connections.get(socket);
    // Node's docs for 'clientError': a reset peer has nobody to answer, and a socket that has
    // begun writing a response must not get a second one in the middle of it.
    const responding = conn !== undefined && [...conn.responses].some((res) => res.headersSent);
    if (error.code === 'ECONNRESET' || !socket.writable || responding) {
      socket.destroy();
      return;
    }
    const { status, bytes } = parserRefusalResponse(error.code);
    logger.info({ status, code: error.code }, 'request refused by the HTTP parser');
    // Ends once the answer is flushed; a client that never reads it is cut off after the idle bound.
    socket.setTimeout(limits.connectionIdleTimeout);
    socket.end(bytes, () => socket.destroy());
  });

  // Node closes a connection over maxConnections as soon as it is accepted ('drop' since 18.6).
  let dropped = 0;
  let lastDropLog = 0;
  server.on('drop', () => {
    dropped += 1;
    const now = Date.now();
    if (now - lastDropLog < DROP_LOG_INTERVAL_MS) return;
    logger.warn({ maxConnections: limits.maxConnections, dropped }, 'connections refused: MAX_CONNECTIONS reached');
    lastDropLog = now;
    dropped = 0;
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : opts.port;

  /**
   * Closes the connections that have nothing in flight and have received nothing for
   * `idleGrace`: a keep-alive connection a client is about to reuse is left alone, so it gets a
   * Connection: close answer rather than a reset.
   */
  const closeIdle = () => {
    const now = Date.now();
    for (const [socket, conn] of connections) {
      // bytesRead counts what the parser consumed too: a request head still arriving is activity.
      if (conn.responses.size > 0 || socket.bytesRead !== conn.bytesRead) {
        conn.bytesRead = socket.bytesRead;
        conn.lastActive = now;
      } else if (now - conn.lastActive >= idleGrace) {
        socket.destroy();
      }
    }
  };

  let shuttingDown: Promise<ShutdownOutcome> | undefined;
  const shutdown = (): Promise<ShutdownOutcome> => {
    shuttingDown ??= new Promise<ShutdownOutcome>((resolve) => {
      try {
        opts.onDrain?.();
      } catch (err) {
        // Readiness is a courtesy to load balancers: failing it must not stop the shutdown.
        logger.error({ err }, 'onDrain failed; shutting down anyway');
      }

      let sweep: NodeJS.Timeout | undefined;
      const finish = (outcome: ShutdownOutcome) => {
        clearTimeout(drainDelay);
        clearTimeout(bound);
        clearInterval(sweep);
        resolve(outcome);
      };
      const stop = () => {
        if (stopping) return;
        stopping = true;
        // Not server.close(): since Node 19 it also calls closeIdleConnections(), which destroys
        // keep-alive connections at once, including those a client is writing its next request
        // to; under load those requests failed with ECONNRESET 120-180 ms after SIGTERM
        // (issue #10). net.Server's close only stops accepting, and calls back once every
        // connection has closed. It also leaves Node's headers/request timeout checks running,
        // so a slow client cannot hold the shutdown past those bounds.
        net.Server.prototype.close.call(server, () => finish('clean'));
        // From here every answer tells its client to go: a client reconnecting now is refused
        // at once. Saying so during the drain delay instead made clients reconnect to this
        // listener, and those still in the kernel's accept queue when it closed were reset.
        for (const conn of connections.values()) {
          for (const res of conn.responses) if (!res.headersSent) res.setHeader('Connection', 'close');
        }
        sweep = setInterval(closeIdle, Math.max(10, Math.min(100, Math.floor(idleGrace / 4))));
        closeIdle();
      };
      // Until then the instance serves as before, readiness aside: load balancers need a moment
      // to see readiness fail and stop sending new connections.
      const drainDelay = setTimeout(stop, limits.shutdownDrainDelay);
      const bound = setTimeout(() => {
        stop();
        for (const socket of connections.keys()) socket.destroy();
        finish('timeout');
      }, opts.shutdownTimeout);
    });
    return shuttingDown;
  };

  return { server, port, shutdown };
}
