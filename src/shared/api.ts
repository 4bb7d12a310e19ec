// The contract between the Electron preload bridge and the renderer.
// Pure TypeScript: no `node:*`, no `electron`, no DOM (STYLE.md, "Runtime layers").

/**
 * What the preload script exposes to the renderer as `window.tidemark`.
 *
 * A placeholder for now: the typed request/response channels and events are added here
 * when the IPC layer lands. contextBridge copies what crosses it, so members are plain data
 * or functions taking and returning plain data: no class instances, no `any`.
 */
export interface TidemarkBridge {
  /** The app version (package.json "version"), as reported by the main process. */
  readonly version: string;
}

/**
 * The switch the main process appends to the renderer's command line (`additionalArguments`)
 * to hand the version to the sandboxed preload, which has no `app` module.
 */
export const VERSION_SWITCH = '--tidemark-version=';
