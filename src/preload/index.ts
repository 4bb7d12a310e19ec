// Preload for the main window. It runs sandboxed (`sandbox: true`): only `electron`'s renderer
// modules and a few Node globals exist here, so it must stay small and bundle to one CommonJS
// file. It exposes one narrow, typed object; never `ipcRenderer` itself (STYLE.md).
import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';
import {
  IPC_CALL,
  IPC_DESKTOP_CALL,
  IPC_EVENT,
  VERSION_SWITCH,
  type ApiEvent,
  type DesktopMethod,
  type DesktopParams,
  type DesktopResponse,
  type Method,
  type Params,
  type Response,
  type TidemarkBridge,
} from '../shared/api.js';
import type { Result } from '../shared/errors.js';

function versionFromArgv(argv: readonly string[]): string {
  const arg = argv.find((a) => a.startsWith(VERSION_SWITCH));
  return arg === undefined ? 'unknown' : arg.slice(VERSION_SWITCH.length);
}

const bridge: TidemarkBridge = Object.freeze({
  version: versionFromArgv(process.argv),
  // The main process validates the parameters and checks the sender; this only forwards.
  call<M extends Method>(method: M, params: Params<M>): Promise<Result<Response<M>>> {
    return ipcRenderer.invoke(IPC_CALL, method, params) as Promise<Result<Response<M>>>;
  },
  desktop<M extends DesktopMethod>(
    method: M,
    params: DesktopParams<M>,
  ): Promise<Result<DesktopResponse<M>>> {
    return ipcRenderer.invoke(IPC_DESKTOP_CALL, method, params) as Promise<
      Result<DesktopResponse<M>>
    >;
  },
  subscribe(listener: (event: ApiEvent) => void): () => void {
    const handler = (_event: IpcRendererEvent, payload: ApiEvent): void => listener(payload);
    ipcRenderer.on(IPC_EVENT, handler);
    return () => {
      ipcRenderer.off(IPC_EVENT, handler);
    };
  },
});

contextBridge.exposeInMainWorld('tidemark', bridge);
