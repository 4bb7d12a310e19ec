// `tidemark serve`: the app's services and UI over HTTP, for servers and NAS boxes.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { TidemarkError } from '../../shared/errors.js';
import { startApp } from '../index.js';
import { defaultDataDir } from '../services/data-dir.js';
import { isLoopback } from '../server/auth.js';
import { HeadlessServer } from '../server/http-server.js';

const DEFAULT_PORT = 7420;
// out/node/main/cli/serve.js → out/renderer, where `electron-vite build` puts the UI.
const RENDERER_DIR = fileURLToPath(new URL('../../../renderer/', import.meta.url));

async function appVersion(): Promise<string> {
  const file = new URL('../../../../package.json', import.meta.url);
  return (JSON.parse(await fsp.readFile(file, 'utf8')) as { version: string }).version;
}

interface ServeOptions {
  host: string;
  port: number;
  token: string;
  tokenGiven: boolean;
  archives: string[];
  dataDir: string;
}

function parseServe(args: string[]): ServeOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        host: { type: 'string', default: '127.0.0.1' },
        port: { type: 'string' },
        token: { type: 'string' },
        archive: { type: 'string', multiple: true },
        'allow-remote': { type: 'boolean' },
        'data-dir': { type: 'string' },
      },
    });
  } catch (err) {
    throw new TidemarkError('usage', (err as Error).message.split('\n')[0] ?? 'bad arguments');
  }
  const v = parsed.values;
  const host = v.host ?? '127.0.0.1';
  if (!isLoopback(host) && !v['allow-remote']) {
    throw new TidemarkError(
      'usage',
      `--host ${host} is reachable from other machines: add --allow-remote to mean it`,
    );
  }
  let port = DEFAULT_PORT;
  if (v.port !== undefined) {
    if (!/^\d+$/.test(v.port) || Number(v.port) > 65535)
      throw new TidemarkError('usage', '--port needs a port number (0-65535)');
    port = Number(v.port);
  }
  const given = v.token ?? process.env.TIDEMARK_TOKEN;
  if (given !== undefined && given.length < 16)
    throw new TidemarkError('usage', '--token needs at least 16 characters');
  return {
    host,
    port,
    token: given ?? randomBytes(24).toString('base64url'),
    tokenGiven: given !== undefined,
    archives: (v.archive ?? []).map((a) => path.resolve(a)),
    dataDir: path.resolve(v['data-dir'] ?? defaultDataDir()),
  };
}

/** Runs until SIGINT/SIGTERM; resolves with the exit code. */
export async function serve(args: string[]): Promise<number> {
  const options = parseServe(args);
  const version = await appVersion();
  if (!fs.existsSync(path.join(RENDERER_DIR, 'index.html')))
    throw new TidemarkError('usage', 'the UI is not built: run `npm run build` first');
  for (const dir of options.archives) {
    if (!fs.existsSync(dir)) throw new TidemarkError('archive.not-found', `no archive at ${dir}`);
  }
  const app = await startApp({
    dataDir: options.dataDir,
    info: { version, shell: 'headless' },
  });
  try {
    for (const dir of options.archives) await app.jobs.adopt(dir);
  } catch (err) {
    await app.close();
    throw err;
  }
  const server = new HeadlessServer({
    host: options.host,
    port: options.port,
    token: options.token,
    rendererDir: RENDERER_DIR,
    dispatch: app.dispatch,
    events: app.events,
  });
  let port: number;
  try {
    port = await server.listen();
  } catch (err) {
    await app.close();
    const code = (err as NodeJS.ErrnoException).code;
    throw new TidemarkError(
      'usage',
      code === 'EADDRINUSE'
        ? `port ${options.port} is in use: choose another with --port`
        : `cannot listen on ${options.host}:${options.port}: ${(err as Error).message}`,
    );
  }
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  const base = `http://${host}:${port}/`;
  process.stdout.write(`tidemark: serving ${base} (data in ${options.dataDir})\n`);
  process.stdout.write(
    options.tokenGiven
      ? `tidemark: open ${base}?token=<your token>\n`
      : `tidemark: open ${base}?token=${options.token}\n`,
  );
  return new Promise((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void server
        .close()
        .then(() => app.close())
        .then(() => resolve(0));
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
