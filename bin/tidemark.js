#!/usr/bin/env node
// The CLI is compiled by `npm run build:node` (run by `npm ci` through `prepare`).
import { existsSync } from 'node:fs';
const entry = new URL('../out/node/main/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write(
    'tidemark: not built yet: run `npm run build:node` in the repository root\n',
  );
  process.exit(70);
}
await import(entry.href);
