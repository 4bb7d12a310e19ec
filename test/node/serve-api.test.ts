// `tidemark serve` as a client sees it: token, Host header, API calls, events.
import * as http from 'node:http';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tidemark } from '../helpers/cli.js';
import { rawRequest, serveArchive, type Served } from '../helpers/serve.js';
import { randomImage } from '../helpers/engine.js';
import { tempDir } from '../helpers/tmp.js';
import * as fs from 'node:fs';
import * as os from 'node:os';

const TOKEN = 'test-token-0123456789abcdef';
let served: Served;
let dir: string;

beforeAll(async () => {
  // Not tempDir(): that one is emptied after each test, and the server outlives them.
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tidemark-serve-'));
  randomImage(path.join(dir, 'disk.img'), 2);
  const init = tidemark('init', path.join(dir, 'disk.img'), path.join(dir, 'archive'));
  expect(init.code).toBe(0);
  served = await serveArchive(dir, TOKEN);
});

afterAll(async () => {
  await served?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const host = () => `127.0.0.1:${served.port}`;
const call = (method: string, headers: Record<string, string>, body = '{}') =>
  rawRequest(served.port, `/api/${method}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Host: host(), ...headers },
    body,
  });

describe('tidemark serve', () => {
  it('answers API calls with the token, and lists the --archive as a job', async () => {
    const r = await call('jobs.list', { Authorization: `Bearer ${TOKEN}` });
    expect(r.status).toBe(200);
    const body = JSON.parse(r.body);
    expect(body.ok).toBe(true);
    expect(body.value).toHaveLength(1);
    expect(body.value[0].config.primary).toBe(path.join(dir, 'disk.img'));
    expect(body.value[0].stateCount).toBe(1);
  });

  it('refuses API calls and pages without the token or with a wrong one: 401', async () => {
    expect((await call('jobs.list', {})).status).toBe(401);
    expect(
      (await call('jobs.list', { Authorization: 'Bearer wrong-token-xxxxxxxxxx' })).status,
    ).toBe(401);
    expect(
      (await call('jobs.list', { Cookie: `tidemark_token_${served.port}=wrong` })).status,
    ).toBe(401);
    expect((await rawRequest(served.port, '/', { headers: { Host: host() } })).status).toBe(401);
    expect(
      (await rawRequest(served.port, '/?token=nope', { headers: { Host: host() } })).status,
    ).toBe(401);
    expect(
      (await rawRequest(served.port, '/api/events', { headers: { Host: host() } })).status,
    ).toBe(401);
  });

  it('refuses a Host header that is not the bound host, even with the token', async () => {
    const r = await call('jobs.list', {
      Authorization: `Bearer ${TOKEN}`,
      Host: `evil.example:${served.port}`,
    });
    expect(r.status).toBe(403);
    expect(r.body).toMatch(/refused/);
    expect(
      (await call('jobs.list', { Authorization: `Bearer ${TOKEN}`, Host: 'localhost:1' })).status,
    ).toBe(403);
    // localhost on the bound port is the same loopback host.
    expect(
      (
        await call('jobs.list', {
          Authorization: `Bearer ${TOKEN}`,
          Host: `localhost:${served.port}`,
        })
      ).status,
    ).toBe(200);
  });

  it('trades ?token= on the first page load for an HttpOnly SameSite=Strict cookie', async () => {
    const r = await rawRequest(served.port, `/?token=${TOKEN}`, { headers: { Host: host() } });
    expect(r.status).toBe(303);
    expect(r.headers.location).toBe('/');
    const cookie = String(r.headers['set-cookie']);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    const page = await rawRequest(served.port, '/', {
      headers: { Host: host(), Cookie: cookie.split(';')[0] as string },
    });
    expect(page.status).toBe(200);
    expect(page.body).toMatch(/<div id="app">/);
    expect(page.headers['content-security-policy']).toMatch(/default-src 'none'/);
  });

  it('returns bad parameters as an error, one line, and refuses non-JSON calls', async () => {
    const auth = { Authorization: `Bearer ${TOKEN}` };
    const r = JSON.parse((await call('jobs.snapshot', auth, '{"id": 5}')).body);
    expect(r.ok).toBe(false);
    expect(r.error.code).toBe('usage');
    expect(r.error.message).toMatch(/ \(jobs\.snapshot id\)$/);
    expect((await call('jobs.list', { ...auth, 'Content-Type': 'text/plain' })).status).toBe(415);
    expect((await call('jobs.list', auth, '{oops')).status).toBe(400);
  });

  it('has no native dialog: the desktop-only dialog.open is an unknown method here', async () => {
    const auth = { Authorization: `Bearer ${TOKEN}` };
    const r = JSON.parse(
      (await call('dialog.open', auth, '{"kind": "folder", "title": "Archive folder"}')).body,
    );
    expect(r).toEqual({
      ok: false,
      error: { code: 'usage', message: 'unknown method dialog.open', retryable: false },
    });
  });

  it('streams job events to an authenticated client', async () => {
    const auth = { Authorization: `Bearer ${TOKEN}` };
    const jobs = JSON.parse((await call('jobs.list', auth)).body).value as {
      config: { id: string };
    }[];
    const id = jobs[0]?.config.id;
    const frames: string[] = [];
    const req = http.get(
      {
        host: '127.0.0.1',
        port: served.port,
        path: '/api/events',
        headers: { ...auth, Host: host() },
      },
      (res) => res.on('data', (d: Buffer) => frames.push(d.toString())),
    );
    try {
      await new Promise((r) => setTimeout(r, 200));
      const snap = JSON.parse((await call('jobs.snapshot', auth, JSON.stringify({ id }))).body);
      expect(snap.ok).toBe(true);
      await new Promise((r) => setTimeout(r, 200));
      const events = frames
        .join('')
        .split('\n\n')
        .filter((f) => f.startsWith('data: '))
        .map((f) => JSON.parse(f.slice(6)));
      const kinds = events
        .filter((e) => e.type === 'job')
        .map((e) => e.job.activity?.kind ?? 'idle');
      expect(kinds).toContain('snapshot');
      expect(kinds.at(-1)).toBe('idle');
    } finally {
      req.destroy();
    }
  });

  it('refuses bad arguments, a folder that is no archive and damaged jobs, in one line', () => {
    const data = tempDir();
    const cases: [string[], number, string][] = [
      [['--port', '99999'], 2, 'tidemark: --port needs a port number (0-65535)\n'],
      [['--token', 'short'], 2, 'tidemark: --token needs at least 16 characters\n'],
      [['--archive', data], 1, `tidemark: ${data} is not a Tidemark archive (no tidemark.json)\n`],
    ];
    for (const [args, code, stderr] of cases) {
      const r = tidemark('serve', '--data-dir', path.join(data, 'data'), ...args);
      expect([r.code, r.stderr]).toEqual([code, stderr]);
    }
    fs.mkdirSync(path.join(data, 'bad'));
    fs.writeFileSync(path.join(data, 'bad', 'jobs.json'), '{"version":1,"jobs":[{"id":1}]}');
    const r = tidemark('serve', '--data-dir', path.join(data, 'bad'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^tidemark: .*jobs\.json is damaged \(jobs\.0\.id: .*\): fix or remove it\n$/,
    );
  });

  it('refuses to bind a non-loopback address without --allow-remote', () => {
    const r = tidemark('serve', '--host', '0.0.0.0', '--data-dir', tempDir());
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'tidemark: --host 0.0.0.0 is reachable from other machines: add --allow-remote to mean it\n',
    );
  });
});
