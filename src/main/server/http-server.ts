// The headless server: the built UI, the API contract over HTTP (POST /api/<method>) and the
// events as server-sent events (GET /api/events). node:http only; every request is checked for
// the Host header and the token before anything else.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ApiEvent } from '../../shared/api.js';
import type { Dispatch } from '../services/api-handlers.js';
import type { EventBus } from '../services/event-bus.js';
import { allowedHosts, bearerToken, cookieToken, sessionCookie, tokenMatches } from './auth.js';
import { staticFile } from './static-files.js';

export interface ServerOptions {
  host: string;
  port: number;
  token: string;
  rendererDir: string;
  dispatch: Dispatch;
  events: EventBus;
}

const MAX_BODY = 1 << 20;
const HEARTBEAT_MS = 15_000;

// The same policy as the page's meta tag, also as a header (it covers what the meta cannot).
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const COMMON_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  // The first page load carries the token in its URL: never send it anywhere as a referrer.
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
};

function send(
  res: http.ServerResponse,
  status: number,
  body: string | Buffer,
  type = 'text/plain; charset=utf-8',
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { ...COMMON_HEADERS, 'Content-Type': type, ...headers });
  res.end(body);
}

function readBody(req: http.IncomingMessage): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        resolve(null);
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export class HeadlessServer {
  private readonly server: http.Server;
  private readonly streams = new Set<http.ServerResponse>();
  private hosts = new Set<string>();
  private port = 0;
  private unsubscribe: (() => void) | null = null;

  constructor(private readonly options: ServerOptions) {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        console.error('tidemark serve: request failed:', err);
        if (!res.headersSent) send(res, 500, 'internal error\n');
        else res.end();
      });
    });
  }

  /** Listens; resolves with the port actually bound (for `--port 0`). */
  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => resolve());
    });
    const port = (this.server.address() as AddressInfo).port;
    this.port = port;
    this.hosts = allowedHosts(this.options.host, port);
    this.unsubscribe = this.options.events.subscribe((e) => this.broadcast(e));
    return port;
  }

  async close(): Promise<void> {
    this.unsubscribe?.();
    for (const res of this.streams) res.end();
    this.streams.clear();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    // A browser's kept-alive connections would hold the close open.
    this.server.closeAllConnections();
    await closed;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (!this.hosts.has(req.headers.host ?? '')) {
      send(res, 403, 'refused: this server answers only to its own host name\n');
      return;
    }
    const url = new URL(req.url ?? '/', 'http://local');
    const queryToken = url.searchParams.get('token');
    if (req.method === 'GET' && !url.pathname.startsWith('/api/') && queryToken !== null) {
      // Once, on the first page load: trade the token in the URL for a cookie and drop it from
      // the address bar and history.
      if (!tokenMatches(this.options.token, queryToken)) {
        send(res, 401, 'wrong token\n');
        return;
      }
      url.searchParams.delete('token');
      send(res, 303, '', 'text/plain', {
        'Set-Cookie': sessionCookie(this.options.token, this.port),
        Location: url.pathname + url.search,
        'Cache-Control': 'no-store',
      });
      return;
    }
    const given = bearerToken(req) ?? cookieToken(req, this.port);
    if (!tokenMatches(this.options.token, given)) {
      send(res, 401, 'a token is needed: open the address `tidemark serve` printed\n', undefined, {
        'WWW-Authenticate': 'Bearer realm="tidemark"',
      });
      return;
    }
    if (url.pathname === '/api/events' && req.method === 'GET') return this.stream(res);
    if (url.pathname.startsWith('/api/')) return this.call(req, res, url.pathname.slice(5));
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'method not allowed\n');
      return;
    }
    const file = await staticFile(this.options.rendererDir, url.pathname);
    if (!file) {
      send(res, 404, 'not found\n');
      return;
    }
    send(res, 200, file.body, file.type, {
      'Content-Security-Policy': CSP,
      'Cache-Control': file.immutable ? 'public, max-age=31536000, immutable' : 'no-store',
    });
  }

  private async call(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    method: string,
  ): Promise<void> {
    if (req.method !== 'POST') {
      send(res, 405, 'API calls are POST requests\n');
      return;
    }
    // A JSON content type cannot be sent cross-site without a CORS preflight, which we never
    // answer: a second guard against forged requests besides the SameSite cookie.
    if (!(req.headers['content-type'] ?? '').startsWith('application/json')) {
      send(res, 415, 'API calls send application/json\n');
      return;
    }
    const body = await readBody(req);
    if (body === null) {
      send(res, 413, 'request too large\n');
      return;
    }
    let params: unknown;
    try {
      params = body.trim() === '' ? {} : JSON.parse(body);
    } catch {
      send(res, 400, 'the request body is not JSON\n');
      return;
    }
    const result = await this.options.dispatch(method, params);
    send(res, 200, JSON.stringify(result), 'application/json', { 'Cache-Control': 'no-store' });
  }

  private stream(res: http.ServerResponse): void {
    res.writeHead(200, {
      ...COMMON_HEADERS,
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
    });
    res.write(': connected\n\n');
    this.streams.add(res);
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
    heartbeat.unref();
    res.on('close', () => {
      clearInterval(heartbeat);
      this.streams.delete(res);
    });
  }

  private broadcast(event: ApiEvent): void {
    const frame = `data: ${JSON.stringify(event)}\n\n`;
    for (const res of this.streams) res.write(frame);
  }
}
