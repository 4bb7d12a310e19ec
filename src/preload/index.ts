// Preload for the main window. It runs sandboxed (`sandbox: true`): only `electron`'s renderer
// modules and a few Node globals exist here, so it must stay small and bundle to one CommonJS
// file. It exposes one narrow, typed object; never `ipcRenderer` itself (STYLE.md).
import { contextBridge } from 'electron';
import { VERSION_SWITCH, type TidemarkBridge } from '../shared/api.js';

function versionFromArgv(argv: readonly string[]): string {
  const arg = argv.find((a) => a.startsWith(VERSION_SWITCH));
  return arg === undefined ? 'unknown' : arg.slice(VERSION_SWITCH.length);
}

const bridge: TidemarkBridge = Object.freeze({
  version: versionFromArgv(process.argv),
});

contextBridge.exposeInMainWorld('tidemark', bridge);
