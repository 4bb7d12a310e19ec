// The one module the UI uses to reach the backend (STYLE.md, "One adapter module"): the
// Electron preload bridge in the desktop app, HTTP + server-sent events under `tidemark serve`.
import type {
  ApiEvent,
  ApiTransport,
  DesktopMethod,
  DesktopParams,
  DesktopResponse,
  LiveLink,
  Method,
  Params,
  Response,
  TidemarkBridge,
} from '../../shared/api';
import type { Result } from '../../shared/errors';
import { httpTransport } from './http-transport';

export interface Backend {
  call<M extends Method>(method: M, params: Params<M>): Promise<Response<M>>;
  subscribe(listener: (event: ApiEvent) => void, onLink?: (link: LiveLink) => void): () => void;
  /** The desktop-only requests (native dialogs); null under `tidemark serve`. */
  desktop: DesktopBackend | null;
}

export interface DesktopBackend {
  call<M extends DesktopMethod>(method: M, params: DesktopParams<M>): Promise<DesktopResponse<M>>;
}

/** An API error, as the services wrote it for people. */
export class BackendError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function unwrap<T>(result: Result<T>): T {
  if (result.ok) return result.value;
  throw new BackendError(result.error.code, result.error.message);
}

function backendOver(transport: ApiTransport, bridge: TidemarkBridge | undefined): Backend {
  return {
    call: async (method, params) => unwrap(await transport.call(method, params)),
    subscribe: (listener, onLink) => transport.subscribe(listener, onLink),
    desktop: bridge
      ? { call: async (method, params) => unwrap(await bridge.desktop(method, params)) }
      : null,
  };
}

export function connectBackend(): Backend {
  // The preload's bridge exists only in the desktop app.
  return backendOver(window.tidemark ?? httpTransport(), window.tidemark);
}
