// The API contract over Electron IPC. Raw ipcMain is used here and nowhere else: the sender is
// checked once for every call, and the services validate the parameters (api-handlers.ts);
// the desktop-only requests are validated here, before their handlers in the glue.
import { ipcMain, type IpcMainInvokeEvent, type WebContents } from 'electron';
import {
  IPC_CALL,
  IPC_DESKTOP_CALL,
  IPC_EVENT,
  isDesktopMethod,
  parseDesktopParams,
  type ApiEvent,
  type DesktopMethod,
  type DesktopParsedParams,
  type DesktopResponse,
} from '../../shared/api.js';
import type { Result } from '../../shared/errors.js';
import type { Dispatch } from '../services/api-handlers.js';
import type { EventBus } from '../services/event-bus.js';

/** Whether a frame may use the API: our own top-level page, loaded from where we loaded it. */
export type SenderCheck = (
  contents: WebContents,
  frameUrl: string,
  isMainFrame: boolean,
) => boolean;

const REFUSED: Result<never> = {
  ok: false,
  error: { code: 'usage', message: 'refused: not the Tidemark window', retryable: false },
};

/** ipcMain.handle, answering only frames that pass the sender check. */
function handleTrusted(
  channel: string,
  trusted: SenderCheck,
  answer: (event: IpcMainInvokeEvent, method: unknown, params: unknown) => Promise<Result<unknown>>,
): void {
  ipcMain.handle(channel, async (event: IpcMainInvokeEvent, method: unknown, params: unknown) => {
    const frame = event.senderFrame;
    if (!frame || !trusted(event.sender, frame.url, frame === event.sender.mainFrame)) {
      return REFUSED;
    }
    return answer(event, method, params);
  });
}

export function registerApi(dispatch: Dispatch, trusted: SenderCheck): void {
  handleTrusted(IPC_CALL, trusted, (_event, method, params) => dispatch(method, params));
}

/** The desktop-only requests: each handler gets checked parameters and the asking window. */
export type DesktopHandlers = {
  [M in DesktopMethod]: (
    params: DesktopParsedParams<M>,
    sender: WebContents,
  ) => Promise<DesktopResponse<M>>;
};

export function registerDesktopApi(handlers: DesktopHandlers, trusted: SenderCheck): void {
  handleTrusted(IPC_DESKTOP_CALL, trusted, async (event, method, params) => {
    if (!isDesktopMethod(method)) {
      return {
        ok: false,
        error: { code: 'usage', message: `unknown request ${String(method)}`, retryable: false },
      };
    }
    const parsed = parseDesktopParams(method, params);
    if (!parsed.ok) return parsed;
    try {
      return { ok: true, value: await handlers[method](parsed.value, event.sender) };
    } catch (err) {
      return {
        ok: false,
        error: {
          code: 'internal',
          message: err instanceof Error ? err.message : String(err),
          retryable: true,
        },
      };
    }
  });
}

/** Pushes every API event to a window until it is closed. */
export function forwardEvents(events: EventBus, contents: WebContents): void {
  const stop = events.subscribe((event: ApiEvent) => {
    if (!contents.isDestroyed()) contents.send(IPC_EVENT, event);
  });
  contents.once('destroyed', stop);
}
