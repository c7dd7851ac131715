/** Run the real `cnm` binary (bin/cnm.js over dist/) in a child process. */
import { execFile, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/cnm.js', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function cnm(args: string[], env: Record<string, string> = {}): CliResult {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 60000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/**
 * The code of the error a `cnm` run failed with, from the log line it writes at
 * debug level (run it with CNM_LOG=debug); undefined when there is none.
 */
export function cliErrorCode(r: CliResult): string | undefined {
  for (const line of r.stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const entry = JSON.parse(line) as { msg?: string; err?: { code?: string } };
      if (entry.msg === 'command failed') return entry.err?.code;
    } catch {
      // not a log line
    }
  }
  return undefined;
}

/** {@link cnm} without blocking this process (for a CLI loop beside other work in it). */
export function cnmAsync(args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
