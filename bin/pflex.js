#!/usr/bin/env node
// The CLI is compiled by `npm install` (prepare) into dist/.
import { main } from '../dist/src/cli/main.js';

main(process.argv.slice(2)).catch((err) => {
  process.stderr.write(`pflex: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
