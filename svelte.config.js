// Read by vite-plugin-svelte (see electron.vite.config.ts), svelte-check and eslint-plugin-svelte.
/** @type {import('@sveltejs/vite-plugin-svelte').SvelteConfig} */
export default {
  compilerOptions: {
    // Svelte 5 only: no legacy `export let` / `$:` components.
    runes: true,
  },
};
