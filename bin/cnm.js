#!/usr/bin/env node
// Node >= 22.1 keeps compiled code between runs (a no-op before)
import module from 'node:module';

module.enableCompileCache?.();
const { main } = await import('../dist/cli-bundle/main.js');

const code = await main(process.argv.slice(2));
// the command is done (stdout and stderr are written synchronously to files and
// pipes on Linux): nothing left in flight may keep the process alive
process.exit(code);
