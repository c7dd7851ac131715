/**
 * Simulated cluster hosts for the tests: each a host netns on a shared underlay
 * (helpers/underlay.ts), with its controller in a process of its own
 * (cluster-host.ts) joined to one etcd on loopback.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ControllerOptions } from '../../ts/options.js';

const script = join(dirname(fileURLToPath(import.meta.url)), 'cluster-host.ts');

export class HostError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ClusterHost {
  proc: ChildProcess;
  /** call an op of cluster-host.ts; rejects with a HostError carrying the CnmError code */
  call<T = unknown>(op: string, ...args: unknown[]): Promise<T>;
  close(): Promise<void>;
}

export async function startHost(opts: ControllerOptions): Promise<ClusterHost> {
  const proc = spawn(process.execPath, ['--import', 'tsx', script, JSON.stringify(opts)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let buf = '';
  let ready: () => void = () => undefined;
  let failed: (e: Error) => void = () => undefined;
  const started = new Promise<void>((res, rej) => ((ready = res), (failed = rej)));
  proc.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const msg = JSON.parse(buf.slice(0, nl)) as { ready?: boolean; id?: number; ok?: boolean; value?: unknown; code?: string; message?: string };
      buf = buf.slice(nl + 1);
      if (msg.ready) ready();
      const w = msg.id === undefined ? undefined : waiting.get(msg.id);
      if (!w) continue;
      waiting.delete(msg.id!);
      if (msg.ok) w.resolve(msg.value);
      else w.reject(new HostError(msg.code!, msg.message!));
    }
  });
  proc.on('exit', (code, signal) => {
    const e = new Error(`host process exited (${code ?? signal})`);
    failed(e);
    for (const w of waiting.values()) w.reject(e);
    waiting.clear();
  });
  await started;
  let next = 0;
  const call = <T>(op: string, ...args: unknown[]) =>
    new Promise<T>((resolve, reject) => {
      const id = next++;
      waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      proc.stdin!.write(`${JSON.stringify({ id, op, args })}\n`);
    });
  return {
    proc,
    call,
    async close() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      await call('close').catch(() => undefined);
    },
  };
}
