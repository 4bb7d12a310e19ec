// Flat config. Not type-aware on purpose (fast); `npm run typecheck` does the type checking.
import { builtinModules } from 'node:module';
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import svelte from 'eslint-plugin-svelte';
import globals from 'globals';
import ts from 'typescript-eslint';
import svelteConfig from './svelte.config.js';

const SOURCE = '**/*.{js,mjs,cjs,ts,mts,cts,svelte}';

// ---- Runtime layers (STYLE.md, "Layers you can see from the folder tree") ----
//
// `no-restricted-imports` is configured once per layer: when several config objects set the
// same rule for a file, the last one wins (options are not merged), so each layer lists every
// restriction that applies to it.

const electronOnlyInGlue = {
  paths: [{ name: 'electron', message: 'Only src/main/electron and src/preload import electron.' }],
  patterns: [
    { group: ['electron/*'], message: 'Only src/main/electron and src/preload import electron.' },
  ],
};

// builtinModules lists subpaths too ('fs/promises', 'path/posix', ...).
const NODE_BUILTINS = builtinModules.filter((name) => !name.startsWith('_'));
const noNodeBuiltins = (where) => ({
  paths: NODE_BUILTINS.map((name) => ({ name, message: `${where} does not run on Node.` })),
  patterns: [{ group: ['node:*'], message: `${where} does not run on Node.` }],
});

/** Merges restriction sets into one `no-restricted-imports` rule entry. */
function restrictImports(...sets) {
  return [
    'error',
    { paths: sets.flatMap((s) => s.paths), patterns: sets.flatMap((s) => s.patterns) },
  ];
}

// The engine must not reach into the CLI or the Electron glue. The relative path that leaves
// src/main/engine depends on how deep the importing file sits, so match it per depth: from
// src/main/engine/format/x.ts it is '../../cli/...' (while '../cli' would still be inside
// the engine). Files nested deeper than ENGINE_MAX_DEPTH folders are only kept from electron.
const ENGINE_MAX_DEPTH = 6;
function engineMayNotImportSiblings(depth) {
  const up = '\\.\\./'.repeat(depth + 1);
  return {
    paths: [],
    patterns: [
      {
        regex: `^${up}(cli|electron)(/|$)|^${up}\\.\\./main/(cli|electron)(/|$)`,
        message: 'src/main/engine may not import src/main/cli or src/main/electron.',
      },
    ],
  };
}
const engineLayers = Array.from({ length: ENGINE_MAX_DEPTH + 1 }, (_, depth) => ({
  name: `tidemark/layers/engine-depth-${depth}`,
  files: [`src/main/engine/${'*/'.repeat(depth)}*.{js,ts,mts,cts}`],
  rules: {
    'no-restricted-imports': restrictImports(electronOnlyInGlue, engineMayNotImportSiblings(depth)),
  },
}));

export default defineConfig([
  globalIgnores([
    'out/',
    'dist/',
    'node_modules/',
    'bench/results/',
    'test-results/',
    '.tmp/',
    'package-lock.json',
  ]),

  { name: 'tidemark/files', files: [SOURCE] },
  js.configs.recommended,
  ts.configs.recommended,
  svelte.configs.recommended,

  {
    name: 'tidemark/node-globals',
    files: [SOURCE],
    ignores: ['src/renderer/**'],
    languageOptions: { globals: { ...globals.node } },
  },
  {
    name: 'tidemark/renderer-globals',
    files: ['src/renderer/**'],
    languageOptions: { globals: { ...globals.browser } },
  },
  {
    name: 'tidemark/svelte-typescript',
    files: ['**/*.svelte', '**/*.svelte.ts', '**/*.svelte.js'],
    languageOptions: {
      parserOptions: { parser: ts.parser, extraFileExtensions: ['.svelte'], svelteConfig },
    },
    rules: {
      // TypeScript checks undefined names (svelte-check); typescript-eslint advises this off.
      'no-undef': 'off',
    },
  },
  {
    name: 'tidemark/style',
    files: [SOURCE],
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' },
      ],
    },
  },

  // Layers, from the most general to the most specific (the last match wins).
  {
    name: 'tidemark/layers/electron-only-in-glue',
    files: [SOURCE],
    ignores: ['src/main/electron/**', 'src/preload/**'],
    rules: { 'no-restricted-imports': restrictImports(electronOnlyInGlue) },
  },
  {
    name: 'tidemark/layers/preload-is-sandboxed',
    files: ['src/preload/**'],
    rules: { 'no-restricted-imports': restrictImports(noNodeBuiltins('A sandboxed preload')) },
  },
  {
    name: 'tidemark/layers/shared-is-pure',
    files: ['src/shared/**'],
    rules: {
      'no-restricted-imports': restrictImports(electronOnlyInGlue, noNodeBuiltins('src/shared')),
    },
  },
  {
    name: 'tidemark/layers/renderer-is-dom-only',
    files: ['src/renderer/**'],
    rules: {
      'no-restricted-imports': restrictImports(electronOnlyInGlue, noNodeBuiltins('src/renderer')),
    },
  },
  {
    // Raw ipcMain only inside the typed wrapper, which checks every sender (STYLE.md).
    name: 'tidemark/ipc-through-wrapper',
    files: ['src/main/electron/**'],
    ignores: ['src/main/electron/ipc.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            {
              name: 'electron',
              importNames: ['ipcMain'],
              message: 'Use registerApi/forwardEvents from src/main/electron/ipc.ts.',
            },
          ],
        },
      ],
    },
  },
  ...engineLayers,
]);
