// The one module that talks to the backend (STYLE.md, "One adapter module"). For now the only
// thing to ask is the version; the typed API calls come with the IPC contract.

/** The app version, or undefined when there is no Electron bridge (headless server, tests). */
export function appVersion(): string | undefined {
  return window.tidemark?.version;
}
