// Electron glue: the locked-down window, the tray, notifications and power events, wired to
// the services started by the composition root. Nothing here does I/O of its own.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  app,
  BrowserWindow,
  nativeTheme,
  powerMonitor,
  session,
  type Tray,
  type WebContents,
} from 'electron';
import { VERSION_SWITCH } from '../../shared/api.js';
import { startApp, type App } from '../index.js';
import { defaultDataDir } from '../services/data-dir.js';
import { linuxOnBattery, watchOnBattery, type PowerWatcher } from '../services/power-source.js';
import { desktopHandlers } from './dialogs.js';
import { forwardEvents, registerApi, registerDesktopApi } from './ipc.js';
import { notifyFailures } from './notifications.js';
import { safeStorageSecrets } from './safe-storage-secrets.js';
import { createTray } from './tray.js';

// This file is bundled to out/main/index.js; the preload and renderer are its siblings.
const PRELOAD_PATH = join(import.meta.dirname, '../preload/index.cjs');
const RENDERER_HTML = join(import.meta.dirname, '../renderer/index.html');
const RENDERER_URL = pathToFileURL(RENDERER_HTML).href;

// `electron-vite dev` points this at the Vite dev server. Never honoured in a packaged app:
// an environment variable must not be able to load foreign content next to our preload.
const DEV_SERVER_URL = app.isPackaged ? undefined : process.env['ELECTRON_RENDERER_URL'];

// Before `ready`: every renderer is sandboxed, whatever its webPreferences say.
app.enableSandbox();
// The folder `tidemark serve` uses too (Electron's default would follow package.json "name").
app.setPath('userData', defaultDataDir());

let services: App | null = null;
let mainWindow: BrowserWindow | null = null;
// Held here so that the tray is not garbage-collected (and vanishes) while the app runs.
const held: { tray?: Tray; power?: PowerWatcher } = {};
let quitting = false;

/** No popups, no navigation away from the app, no <webview>: for every web contents. */
function lockDown(contents: WebContents): void {
  contents.setWindowOpenHandler(() => ({ action: 'deny' }));
  contents.on('will-navigate', (event) => {
    // A reload (Vite's full reload in dev) navigates to the current URL; anything else is out.
    if (event.url !== contents.getURL()) event.preventDefault();
  });
  contents.on('will-attach-webview', (event) => event.preventDefault());
}

/** The UI needs no camera, notifications, clipboard-read, ...: refuse every permission. */
function denyAllPermissions(): void {
  session.defaultSession.setPermissionRequestHandler((_contents, _permission, grant) =>
    grant(false),
  );
  session.defaultSession.setPermissionCheckHandler(() => false);
}

/** Only our window's top frame, showing our own page, may call the API. */
function trustedSender(contents: WebContents, frameUrl: string, isMainFrame: boolean): boolean {
  if (!isMainFrame || mainWindow === null || contents !== mainWindow.webContents) return false;
  const origin = DEV_SERVER_URL ?? RENDERER_URL;
  return DEV_SERVER_URL === undefined ? frameUrl === origin : frameUrl.startsWith(origin);
}

function createMainWindow(services: App): BrowserWindow {
  const window = new BrowserWindow({
    title: 'Tidemark',
    width: 1000,
    height: 760,
    minWidth: 480,
    minHeight: 360,
    show: false,
    autoHideMenuBar: true,
    // Matches the renderer's background so the first frame doesn't flash.
    backgroundColor: nativeTheme.shouldUseDarkColors ? '#17191e' : '#ffffff',
    webPreferences: {
      preload: PRELOAD_PATH,
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      webviewTag: false,
      spellcheck: false,
      additionalArguments: [`${VERSION_SWITCH}${services.info.version}`],
    },
  });
  forwardEvents(services.events, window.webContents);
  window.once('ready-to-show', () => window.show());
  // Closing the window leaves Tidemark in the tray: backups go on.
  window.on('close', (event) => {
    if (!quitting) {
      event.preventDefault();
      window.hide();
    }
  });
  const loading =
    DEV_SERVER_URL === undefined ? window.loadFile(RENDERER_HTML) : window.loadURL(DEV_SERVER_URL);
  loading.catch((error: unknown) => {
    console.error('tidemark: failed to load the renderer:', error);
  });
  return window;
}

function openWindow(): void {
  if (!services) return;
  mainWindow ??= createMainWindow(services);
  mainWindow.show();
  mainWindow.focus();
}

/**
 * powerMonitor's 'on-battery' / 'on-ac' events come only on macOS and Windows ('on-ac' never on
 * Linux), so both sources are polled and the events only make the next look happen sooner.
 */
function watchPower(services: App): PowerWatcher {
  const { scheduler } = services;
  const read = async (): Promise<boolean> =>
    powerMonitor.isOnBatteryPower() || (process.platform === 'linux' && (await linuxOnBattery()));
  const watcher = watchOnBattery(read, (onBattery) => scheduler.setOnBattery(onBattery));
  powerMonitor.on('on-battery', () => void watcher.poll());
  powerMonitor.on('on-ac', () => void watcher.poll());
  powerMonitor.on('resume', () => {
    void watcher.poll();
    // After sleep a backup disk may have come or gone.
    scheduler.drivesChanged();
  });
  return watcher;
}

if (!app.requestSingleInstanceLock()) {
  app.quit();
} else {
  app.on('second-instance', openWindow);
  app.on('web-contents-created', (_event, contents) => lockDown(contents));
  // The tray keeps the app (and its schedule) alive with no window open.
  app.on('window-all-closed', () => undefined);
  app.on('before-quit', () => {
    quitting = true;
  });
  app.on('will-quit', () => {
    held.power?.stop();
    void services?.close();
  });

  void app.whenReady().then(async () => {
    denyAllPermissions();
    services = await startApp({
      dataDir: app.getPath('userData'),
      info: { version: app.getVersion(), shell: 'desktop' },
      secrets: safeStorageSecrets(app.getPath('userData')),
    });
    registerApi(services.dispatch, trustedSender);
    registerDesktopApi(desktopHandlers, trustedSender);
    held.power = watchPower(services);
    notifyFailures(services, openWindow);
    held.tray = createTray(services, { open: openWindow, quit: () => app.quit() });
    openWindow();
    app.on('activate', openWindow);
  });
}
