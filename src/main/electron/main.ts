// Electron glue: one locked-down window that loads the renderer. Nothing else lives here yet;
// the services are wired in by the composition root in a later change (STYLE.md).
import { join } from 'node:path';
import { app, BrowserWindow, nativeTheme, session, type WebContents } from 'electron';
import { VERSION_SWITCH } from '../../shared/api.js';

// This file is bundled to out/main/index.js; the preload and renderer are its siblings.
const PRELOAD_PATH = join(import.meta.dirname, '../preload/index.cjs');
const RENDERER_HTML = join(import.meta.dirname, '../renderer/index.html');

// `electron-vite dev` points this at the Vite dev server. Never honoured in a packaged app:
// an environment variable must not be able to load foreign content next to our preload.
const DEV_SERVER_URL = app.isPackaged ? undefined : process.env['ELECTRON_RENDERER_URL'];

// Before `ready`: every renderer is sandboxed, whatever its webPreferences say.
app.enableSandbox();

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

function createMainWindow(): BrowserWindow {
  const window = new BrowserWindow({
    title: 'Tidemark',
    width: 960,
    height: 640,
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
      spellcheck: false,
      additionalArguments: [`${VERSION_SWITCH}${app.getVersion()}`],
    },
  });
  window.once('ready-to-show', () => window.show());
  const loading =
    DEV_SERVER_URL === undefined ? window.loadFile(RENDERER_HTML) : window.loadURL(DEV_SERVER_URL);
  loading.catch((error: unknown) => {
    console.error('tidemark: failed to load the renderer:', error);
  });
  return window;
}

app.on('web-contents-created', (_event, contents) => lockDown(contents));
app.on('window-all-closed', () => {
  if (process.platform !== 'darwin') app.quit();
});

void app.whenReady().then(() => {
  denyAllPermissions();
  createMainWindow();
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0) createMainWindow();
  });
});
