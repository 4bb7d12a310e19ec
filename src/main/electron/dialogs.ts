// The desktop-only requests: the system's open dialog for the path fields of the UI.
import { BrowserWindow, dialog, type OpenDialogOptions } from 'electron';
import type { DesktopHandlers } from './ipc.js';

export const desktopHandlers: DesktopHandlers = {
  async 'dialog.open'({ kind, title }, sender) {
    const options: OpenDialogOptions = {
      title,
      properties: kind === 'folder' ? ['openDirectory', 'createDirectory'] : ['openFile'],
    };
    // Over the asking window (modal to it, as the system expects), or free-standing if it
    // went away meanwhile.
    const window = BrowserWindow.fromWebContents(sender);
    const chosen = window
      ? await dialog.showOpenDialog(window, options)
      : await dialog.showOpenDialog(options);
    return { path: chosen.canceled ? null : (chosen.filePaths[0] ?? null) };
  },
};
