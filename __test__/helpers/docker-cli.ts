// The stock docker CLI against a daemon socket, for the daemon tests.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The docker client binary, when this machine has one. */
export const dockerBin = ['/usr/local/bin/docker', '/usr/bin/docker'].find((p) => existsSync(p));

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

/** Run the docker CLI asynchronously (the daemon answers from this very process). */
export function dockerAt(socket: string, ...args: string[]): Promise<CliResult> {
  // a fresh DOCKER_CONFIG keeps the user's docker settings out of the test
  const config = mkdtempSync(join(tmpdir(), 'cnm-dcfg-'));
  return new Promise((resolve) => {
    const child = spawn(dockerBin!, args, { env: { ...process.env, DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: config } });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    const timer = setTimeout(() => child.kill(), 30000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      rmSync(config, { recursive: true, force: true });
      resolve({ code: code ?? -1, out: out.trim(), err: err.trim() });
    });
  });
}
