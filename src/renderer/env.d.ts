/// <reference types="svelte" />
/// <reference types="vite/client" />
import type { TidemarkBridge } from '../shared/api';

declare global {
  interface Window {
    /** Set by the Electron preload; absent when the UI is served by the headless server. */
    readonly tidemark?: TidemarkBridge;
  }
}
