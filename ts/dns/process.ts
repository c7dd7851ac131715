/** Starting the CLI's background resolver (resolver-main.ts) and waiting until it answers. */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { log } from '../log.js';
import type { ControllerOptions } from '../options.js';
import { askResolver, controlPath } from './control.js';

const script = join(dirname(fileURLToPath(import.meta.url)), import.meta.url.endsWith('.ts') ? 'resolver-main.ts' : 'resolver-main.js');

/** Start it for the host whose state lives in `hostDir`; true once it answers (within 10 s). */
export async function startResolverProcess(opts: ControllerOptions, hostDir: string): Promise<boolean> {
  const logFd = openSync(join(hostDir, 'resolver.log'), 'a', 0o600);
  const child = spawn(process.execPath, [...(script.endsWith('.ts') ? ['--import', 'tsx'] : []), script, JSON.stringify(opts)], {
    detached: true,
    stdio: ['ignore', 'ignore', logFd],
  });
  closeSync(logFd);
  child.unref();
  const path = controlPath(hostDir);
  const until = Date.now() + 10_000;
  while (Date.now() < until) {
    if ((await askResolver(path, 'ping', 500)) === 'pong') return true;
    if (child.exitCode !== null) {
      // it found another resolver serving (a race with another command): that one is asked
      return (await askResolver(path, 'ping', 500)) === 'pong';
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  log.warn('the background resolver did not start: the next command that changes a sandbox tries again', { hostDir });
  return false;
}
