import { resolve } from 'node:path';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'electron-vite';
import type { Plugin } from 'vite';

const root = import.meta.dirname;

/**
 * The dev server injects component CSS as <style> elements and talks HMR over a WebSocket,
 * both of which the strict CSP in src/renderer/index.html forbids. Relax it in `serve` only;
 * built files keep the strict policy.
 */
function devCsp(): Plugin {
  return {
    name: 'tidemark:dev-csp',
    apply: 'serve',
    transformIndexHtml(html) {
      const meta = /(http-equiv="Content-Security-Policy"\s+content=")([^"]*)"/;
      if (!meta.test(html)) throw new Error('tidemark:dev-csp: no CSP meta tag in index.html');
      return html.replace(meta, (_tag, head: string, policy: string) => {
        const relaxed = policy
          .replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
          .replace("connect-src 'self'", "connect-src 'self' ws://localhost:*");
        return `${head}${relaxed}"`;
      });
    },
  };
}

export default defineConfig({
  main: {
    build: {
      rolldownOptions: {
        // The entry is named `index` so it is emitted as out/main/index.js (package.json "main");
        // the engine worker is its own entry beside it (engine-host.ts loads it from there), and
        // so is the engine's block worker (block-worker-client.ts looks for it beside itself).
        input: {
          index: resolve(root, 'src/main/electron/main.ts'),
          'engine-worker': resolve(root, 'src/main/engine-host/engine-worker.ts'),
          'block-worker': resolve(root, 'src/main/engine/block-worker.ts'),
        },
      },
    },
  },
  preload: {
    build: {
      // A sandboxed preload cannot require() from node_modules or load ES modules: bundle
      // everything into one CommonJS file.
      externalizeDeps: false,
      rolldownOptions: {
        input: { index: resolve(root, 'src/preload/index.ts') },
        output: { format: 'cjs', entryFileNames: '[name].cjs' },
      },
    },
  },
  renderer: {
    root: resolve(root, 'src/renderer'),
    build: {
      rolldownOptions: {
        input: { index: resolve(root, 'src/renderer/index.html') },
      },
    },
    plugins: [svelte({ configFile: resolve(root, 'svelte.config.js') }), devCsp()],
  },
});
