#!/usr/bin/env node
// Node >= 22.1 keeps compiled code between runs (a no-op before)
import module from 'node:module';

module.enableCompileCache?.();
const { main } = await import('../dist/cli-bundle/main.js');

process.exitCode = await main(process.argv.slice(2));
