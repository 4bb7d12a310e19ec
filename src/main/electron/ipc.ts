// The API contract over Electron IPC. Raw ipcMain is used here and nowhere else: the sender is
// checked once for every call, and the services validate the parameters (api-handlers.ts).
import { ipcMain, type IpcMainInvokeEvent, type WebContents } from 'electron';
import { IPC_CALL, IPC_EVENT, type ApiEvent } from '../../shared/api.js';
import type { Result } from '../../shared/errors.js';
import type { Dispatch } from '../services/api-handlers.js';
import type { EventBus } from '../services/event-bus.js';

/** Whether a frame may use the API: our own top-level page, loaded from where we loaded it. */
export type SenderCheck = (
  contents: WebContents,
  frameUrl: string,
  isMainFrame: boolean,
) => boolean;

export function registerApi(dispatch: Dispatch, trusted: SenderCheck): void {
  ipcMain.handle(
    IPC_CALL,
    async (
      event: IpcMainInvokeEvent,
      method: unknown,
      params: unknown,
    ): Promise<Result<unknown>> => {
      const frame = event.senderFrame;
      if (!frame || !trusted(event.sender, frame.url, frame === event.sender.mainFrame)) {
        return {
          ok: false,
          error: { code: 'usage', message: 'refused: not the Tidemark window', retryable: false },
        };
      }
      return dispatch(method, params);
    },
  );
}

/** Pushes every API event to a window until it is closed. */
export function forwardEvents(events: EventBus, contents: WebContents): void {
  const stop = events.subscribe((event: ApiEvent) => {
    if (!contents.isDestroyed()) contents.send(IPC_EVENT, event);
  });
  contents.once('destroyed', stop);
}
