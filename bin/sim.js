#!/usr/bin/env node
// The `sim` command: runs the compiled CLI (dist/ is built by `npm ci` through `prepare`).
import { main } from '../dist/src/cli/main.js';

process.exitCode = await main(process.argv);
