import { spawn, type ChildProcess } from 'node:child_process';
import * as http from 'node:http';
import * as path from 'node:path';
import { CLI } from './cli.js';

export interface Served {
  url: string;
  port: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** Starts the real `tidemark serve` on a free port and waits until it listens. */
export function startServe(args: string[]): Promise<Served> {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /serving (http:\/\/[^ ]+\/)/.exec(out);
      if (m?.[1]) {
        const url = m[1];
        resolve({
          url,
          port: Number(new URL(url).port),
          child,
          stop: () =>
            new Promise((done) => {
              if (child.exitCode !== null) return done();
              child.once('exit', () => done());
              child.kill('SIGTERM');
            }),
        });
      }
    });
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
  });
}

/** `tidemark serve` of the archive `<dir>/archive`, with its data dir in `<dir>/data`. */
export function serveArchive(dir: string, token: string): Promise<Served> {
  return startServe([
    '--token',
    token,
    '--data-dir',
    path.join(dir, 'data'),
    '--archive',
    path.join(dir, 'archive'),
  ]);
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A request with exactly the headers given (fetch would not let a test forge Host). */
export function rawRequest(
  port: number,
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** The answer of the HTTP API: `value` when ok, `error` otherwise. */
export interface ApiAnswer<T> {
  ok: boolean;
  value: T;
  error?: { code?: string; message: string };
}

/** One authenticated POST to `tidemark serve`'s API, the response as sent. */
export function apiRequest(
  served: Served,
  token: string,
  method: string,
  params: unknown = {},
): Promise<RawResponse> {
  return rawRequest(served.port, `/api/${method}`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      Host: `127.0.0.1:${served.port}`,
      Authorization: `Bearer ${token}`,
      // A kept-alive socket the server closed between two slow steps would hang up the next call.
      Connection: 'close',
    },
    body: JSON.stringify(params),
  });
}

/** One authenticated call of `tidemark serve`'s API, answered as sent. */
export async function apiCall<T>(
  served: Served,
  token: string,
  method: string,
  params: unknown = {},
): Promise<ApiAnswer<T>> {
  return JSON.parse((await apiRequest(served, token, method, params)).body) as ApiAnswer<T>;
}
