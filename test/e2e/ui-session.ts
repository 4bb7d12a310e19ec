// One UI session for the end-to-end tests: `tidemark serve` on a fresh data dir and Debian's
// Chromium on it, with every script error and CSP violation collected so a test can fail on it.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { startServe, type Served } from '../helpers/serve.js';
import { TidemarkPage } from './tidemark-page.js';

export const CHROMIUM = '/usr/bin/chromium';
export const haveChromium = fs.existsSync(CHROMIUM);
if (!haveChromium) console.warn(`skipping the UI tests: no ${CHROMIUM} (apt-get install chromium)`);

export interface UiSession {
  dir: string;
  served: Served;
  ui: TidemarkPage;
  /** Script errors and console errors of the page, in order. */
  consoleErrors: string[];
  /**
   * Stops `tidemark serve` and starts it again on the same port and data dir (the session
   * cookie names the port), with `token` or the same token; `served` then is the new one.
   */
  restartServe(token?: string): Promise<void>;
  /** Stops `tidemark serve` and returns the function that starts it again. */
  stopServe(): Promise<(token?: string) => Promise<void>>;
  close(): Promise<void>;
}

export async function openUiSession(options: {
  /** Names the temporary folder and the screenshots' folder under test-results/. */
  name: string;
  token: string;
  viewport: { width: number; height: number };
  colorScheme?: 'light' | 'dark';
}): Promise<UiSession> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tidemark-${options.name}-`));
  const shots = path.resolve(import.meta.dirname, '../../test-results', options.name);
  fs.rmSync(shots, { recursive: true, force: true });
  let served: Served | undefined;
  let context: BrowserContext | undefined;
  const close = async (): Promise<void> => {
    await context?.close();
    await served?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const serveArgs = (token: string): string[] => [
    '--token',
    token,
    '--data-dir',
    path.join(dir, 'data'),
  ];
  try {
    served = await startServe(serveArgs(options.token));
    context = await chromium.launchPersistentContext(path.join(dir, 'chromium'), {
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: options.viewport,
      ...(options.colorScheme ? { colorScheme: options.colorScheme } : {}),
    });
    const page = context.pages()[0] ?? (await context.newPage());
    const consoleErrors: string[] = [];
    // Script errors and CSP violations (an inline style the policy blocks) fail the run.
    page.on('pageerror', (err) => consoleErrors.push(`page error: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error') consoleErrors.push(msg.text());
    });
    const session: UiSession = {
      dir,
      served,
      ui: new TidemarkPage(page, shots),
      consoleErrors,
      close,
      async stopServe() {
        const port = session.served.port;
        await session.served.stop();
        served = undefined;
        return async (token = options.token) => {
          served = await startServe([...serveArgs(token), '--port', String(port)]);
          session.served = served;
        };
      },
      async restartServe(token) {
        await (
          await session.stopServe()
        )(token);
      },
    };
    return session;
  } catch (err) {
    await close();
    throw err;
  }
}
