import http from 'node:http';
import net from 'node:net';
import { listen } from '../../src/http/listen';
import { createLogger } from '../../src/http/request-log';
import { type RunningServer, startServer, tempDir } from '../support/server-process';

const SECRET = 'a-production-secret-of-at-least-32-bytes!!';

// Small bounds, so every case takes a second or two. Node looks for expired requests every
// min(1 s, HEADERS_TIMEOUT / 2): a 408 may come that much after its bound, plus scheduling.
const HEADERS_TIMEOUT = 1_000;
const REQUEST_TIMEOUT = 1_500;
const KEEP_ALIVE_TIMEOUT = 1_000;
const CONNECTION_IDLE_TIMEOUT = 800;
const MAX_CONNECTIONS = 3;
const CHECK_SLACK = 1_500;

function start(env: Record<string, string>, waitForHealth = true): Promise<RunningServer> {
  return startServer(
    {
      NODE_ENV: 'production',
      JWT_SECRET: SECRET,
      ADMIN_PASSWORD: 'socket-limits-admin-password',
      DATA_DIR: tempDir(),
      LOG_LEVEL: 'warn',
      ...env,
    },
    { waitForHealth },
  );
}

/** A raw connection that records what it receives and when it closes. */
interface Probe {
  socket: net.Socket;
  connectedAt: number;
  received: () => string;
  /** Resolves with ms from connect to close, or null if still open after `withinMs`. */
  closedWithin(withinMs: number): Promise<number | null>;
  /** Resolves once `text` has arrived after offset `from` (rejects if the connection closes first). */
  waitFor(text: string, from?: number): Promise<void>;
}

async function connect(port: number): Promise<Probe> {
  const socket = net.connect(port, '127.0.0.1');
  let data = '';
  let closedAt: number | undefined;
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      closedAt = Date.now();
      resolve();
    }),
  );
  // A reset or a refused write is one way of being closed; the cases assert on the close.
  socket.on('error', () => undefined);
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => (data += d));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const connectedAt = Date.now();
  return {
    socket,
    connectedAt,
    received: () => data,
    async closedWithin(withinMs) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([closed, new Promise((r) => (timer = setTimeout(r, withinMs)))]);
      clearTimeout(timer);
      return closedAt === undefined ? null : closedAt - connectedAt;
    },
    waitFor(text, from = 0) {
      const arrived = () => data.indexOf(text, from) !== -1;
      return new Promise((resolve, reject) => {
        const check = () => {
          if (arrived()) {
            socket.off('data', check);
            resolve();
          }
        };
        socket.on('data', check);
        void closed.then(() => (arrived() ? resolve() : reject(new Error(`closed before "${text}"; got: ${data}`))));
        check();
      });
    },
  };
}

/** Writes `chunks` one every `everyMs`, until the connection closes or they run out. */
function trickle(socket: net.Socket, chunks: string[], everyMs: number): NodeJS.Timeout {
  const timer = setInterval(() => {
    const chunk = chunks.shift();
    if (chunk === undefined || socket.destroyed) clearInterval(timer);
    else socket.write(chunk);
  }, everyMs);
  return timer;
}

/** A raw HTTP/1.1 answer taken apart: status, headers (lower-cased names) and body. */
function parseAnswer(raw: string): { status: number; headers: Record<string, string>; body: string } {
  const end = raw.indexOf('\r\n\r\n');
  if (end === -1) throw new Error(`no complete head in: ${JSON.stringify(raw)}`);
  const [statusLine, ...lines] = raw.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine ?? '')?.[1]), headers, body: raw.slice(end + 4) };
}

/**
 * Checks that a raw answer is the problem+json refusal of `status`, complete (Content-Length
 * bytes of body), closing the connection, and returns its problem document.
 */
function expectRefusal(raw: string, status: number): Record<string, unknown> {
  const answer = parseAnswer(raw);
  expect(answer.status).toBe(status);
  expect(answer.headers['content-type']).toBe('application/problem+json');
  expect(answer.headers['connection']).toBe('close');
  expect(answer.headers['cache-control']).toBe('no-store');
  expect(Buffer.byteLength(answer.body)).toBe(Number(answer.headers['content-length']));
  const problem = JSON.parse(answer.body) as Record<string, unknown>;
  expect(problem).toMatchObject({ title: http.STATUS_CODES[status], status });
  expect(problem['type'] === 'about:blank' || String(problem['type']).startsWith('urn:problem-type:')).toBe(true);
  expect(typeof problem['detail']).toBe('string');
  return problem;
}

const healthz = (keepAlive: boolean) => `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: ${keepAlive ? 'keep-alive' : 'close'}\r\n\r\n`;

describe('socket limits of the real process', () => {
  let srv: RunningServer;
  const open: net.Socket[] = [];
  const probe = async (port = srv.port) => {
    const p = await connect(port);
    open.push(p.socket);
    return p;
  };

  beforeAll(async () => {
    srv = await start({
      HEADERS_TIMEOUT: String(HEADERS_TIMEOUT),
      REQUEST_TIMEOUT: String(REQUEST_TIMEOUT),
      KEEP_ALIVE_TIMEOUT: String(KEEP_ALIVE_TIMEOUT),
      CONNECTION_IDLE_TIMEOUT: String(CONNECTION_IDLE_TIMEOUT),
    });
  });
  afterEach(() => {
    for (const s of open.splice(0)) s.destroy();
  });
  afterAll(async () => {
    await srv.stop('SIGKILL');
  });

  test('when a connection never sends a byte, then it is closed within CONNECTION_IDLE_TIMEOUT', async () => {
    const p = await probe();
    const after = await p.closedWithin(CONNECTION_IDLE_TIMEOUT + 1_000);
    expect(after).not.toBeNull();
    expect(after).toBeGreaterThanOrEqual(CONNECTION_IDLE_TIMEOUT - 50);
    expect(after).toBeLessThan(CONNECTION_IDLE_TIMEOUT + 1_000);
    expect(p.received()).toBe('');
  });

  test('when a request head trickles in past HEADERS_TIMEOUT, then the answer is 408 within about a second of the bound', async () => {
    const p = await probe();
    p.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    // A byte every 200 ms: never idle long enough for CONNECTION_IDLE_TIMEOUT, never a whole head.
    trickle(
      p.socket,
      Array.from({ length: 100 }, () => 'X'),
      200,
    );
    const after = await p.closedWithin(HEADERS_TIMEOUT + CHECK_SLACK);
    expect(after).not.toBeNull();
    expect(expectRefusal(p.received(), 408)).toMatchObject({ type: 'about:blank', title: 'Request Timeout' });
    expect(after).toBeGreaterThanOrEqual(HEADERS_TIMEOUT - 50);
    expect(after).toBeLessThan(HEADERS_TIMEOUT + CHECK_SLACK);
  });

  test('when a request body trickles in past REQUEST_TIMEOUT, then the answer is 408 within about a second of the bound', async () => {
    const p = await probe();
    const body = JSON.stringify({ name: 'admin', password: 'socket-limits-admin-password' });
    p.socket.write(`POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
    trickle(p.socket, body.split(''), 200);
    const after = await p.closedWithin(REQUEST_TIMEOUT + CHECK_SLACK);
    expect(after).not.toBeNull();
    expect(expectRefusal(p.received(), 408)).toMatchObject({ type: 'about:blank', title: 'Request Timeout' });
    expect(after).toBeGreaterThanOrEqual(REQUEST_TIMEOUT - 50);
    expect(after).toBeLessThan(REQUEST_TIMEOUT + CHECK_SLACK);
  });

  test('when a request header is 20 KB, then the answer is 431 problem+json and the connection closes', async () => {
    const p = await probe();
    p.socket.write(`GET /user HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ${'a'.repeat(20 * 1024)}\r\n\r\n`);
    expect(await p.closedWithin(2_000)).not.toBeNull();
    expect(expectRefusal(p.received(), 431)).toMatchObject({ type: 'about:blank', title: 'Request Header Fields Too Large' });
  });

  test.each([
    ['a garbage request line', '\x01\x02 nonsense\r\n\r\n'],
    ['a malformed version', 'GET /healthz HTTP/1.x\r\nHost: 127.0.0.1\r\n\r\n'],
    ['a header name with a space', 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header: x\r\n\r\n'],
    [
      'both Content-Length and Transfer-Encoding',
      'POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    ],
  ])('when a request has %s, then the answer is 400 problem+json and the connection closes', async (_name, request) => {
    const p = await probe();
    p.socket.write(request);
    expect(await p.closedWithin(2_000)).not.toBeNull();
    expect(expectRefusal(p.received(), 400)).toMatchObject({ type: 'urn:problem-type:invalid_request', code: 'invalid_request' });
  });

  test('when a malformed request follows a good one on a keep-alive connection, then the good one is answered and the bad one gets 400 problem+json', async () => {
    const p = await probe();
    p.socket.write(healthz(true));
    await p.waitFor('{"status":"ok"}');
    const before = p.received().length;
    p.socket.write('GET /healthz HTTP/9.9 extra\r\n\r\n');
    expect(await p.closedWithin(2_000)).not.toBeNull();
    expect(p.received().slice(0, before)).toMatch(/^HTTP\/1\.1 200 /);
    expectRefusal(p.received().slice(before), 400);
  });

  test('when a keep-alive connection stays idle after an answer, then it is closed after KEEP_ALIVE_TIMEOUT, not before', async () => {
    const p = await probe();
    p.socket.write(healthz(true));
    await p.waitFor('{"status":"ok"}');
    const answeredAt = Date.now();
    expect(p.received()).toMatch(/^HTTP\/1\.1 200 /);
    expect(p.received()).toMatch(/\r\nKeep-Alive: timeout=1\r\n/i);
    await p.closedWithin(KEEP_ALIVE_TIMEOUT + 1_500);
    expect(p.socket.destroyed).toBe(true);
    // Node closes its side a second after the timeout it advertises, so that a client that
    // honours Keep-Alive: timeout= never writes to a connection being closed.
    const idleFor = Date.now() - answeredAt;
    expect(idleFor).toBeGreaterThanOrEqual(KEEP_ALIVE_TIMEOUT - 50);
    expect(idleFor).toBeLessThan(KEEP_ALIVE_TIMEOUT + 1_500);
  });

  test('when MAX_CONNECTIONS are open, then one more is closed unanswered while those stay usable, and a freed slot is usable again', async () => {
    const limited = await start({ MAX_CONNECTIONS: String(MAX_CONNECTIONS) }, false);
    try {
      // Not startServer's readiness wait: fetch keeps its connection alive and would take a slot.
      await waitForHealth(limited);
      const kept: Probe[] = [];
      for (let i = 0; i < MAX_CONNECTIONS; i++) {
        const p = await probe(limited.port);
        p.socket.write(healthz(true));
        await p.waitFor('{"status":"ok"}');
        kept.push(p);
      }

      const extra = await probe(limited.port);
      extra.socket.write(healthz(true));
      expect(await extra.closedWithin(1_000)).not.toBeNull();
      expect(extra.received()).toBe('');

      for (const p of kept) {
        const before = p.received().length;
        p.socket.write(healthz(true));
        await p.waitFor('{"status":"ok"}', before);
        expect(p.received().slice(before)).toMatch(/^HTTP\/1\.1 200 /);
      }

      kept[0]?.socket.end();
      await kept[0]?.closedWithin(1_000);
      // The server counts the slot free once it has seen the close: give it a moment.
      let answered = false;
      for (let attempt = 0; attempt < 20 && !answered; attempt++) {
        const again = await probe(limited.port);
        again.socket.write(healthz(false));
        await again.closedWithin(1_000);
        answered = /^HTTP\/1\.1 200 /.test(again.received());
        if (!answered) await new Promise((r) => setTimeout(r, 50));
      }
      expect(answered).toBe(true);
    } finally {
      await limited.stop('SIGKILL');
    }
  });
});

/** Waits until GET /healthz answers 200, each try on a connection closed after its answer. */
async function waitForHealth(srv: RunningServer): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      http
        .get({ host: '127.0.0.1', port: srv.port, path: '/healthz', agent: false }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode === 200));
        })
        .on('error', () => resolve(false));
    });
    if (ok) {
      // The agent-less request's connection closes just after the answer: let the server see it.
      await new Promise((r) => setTimeout(r, 100));
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server did not answer /healthz in time\nstdout: ${srv.stdout()}\nstderr: ${srv.stderr()}`);
}

describe('HTTP-parser refusals on a connection already answering', () => {
  test('when a malformed request arrives while a response is being written, then no refusal is written into it and the connection is destroyed', async () => {
    let release: () => void = () => undefined;
    const served = await listen(
      (_req, res) => {
        // Headers and part of a body out; the rest held back until the test says.
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.write('partial');
        release = () => res.end('-rest');
      },
      {
        host: '127.0.0.1',
        port: 0,
        limits: {
          headersTimeout: 5_000,
          requestTimeout: 10_000,
          keepAliveTimeout: 5_000,
          connectionIdleTimeout: 5_000,
          maxConnections: 10,
          shutdownDrainDelay: 0,
        },
        shutdownTimeout: 1_000,
        logger: createLogger('silent'),
      },
    );
    const p = await connect(served.port);
    try {
      p.socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      await p.waitFor('partial');
      p.socket.write('\x01\x02 nonsense\r\n\r\n');
      expect(await p.closedWithin(2_000)).not.toBeNull();
      expect(p.received()).toMatch(/^HTTP\/1\.1 200 /);
      expect(p.received()).not.toMatch(/HTTP\/1\.1 400|problem\+json/);
    } finally {
      release();
      p.socket.destroy();
      await served.shutdown();
    }
  });
});
