/**
 * Simulated cluster hosts for the demo and the tests: each a host netns on a
 * shared LAN (lan.ts), with its controller in a process of its own
 * (host-process.ts) joined to one etcd on loopback.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ControllerOptions } from '../options.js';

// run from the sources (tests, under tsx) or from the build
const fromSource = import.meta.url.endsWith('.ts');
const script = join(dirname(fileURLToPath(import.meta.url)), fromSource ? 'host-process.ts' : 'host-process.js');

/** An op that failed in the host process, with its CnmError code. */
export class HostError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A host process and its command channel. */
export interface ClusterHost {
  proc: ChildProcess;
  /** call an op of cluster-host.ts; rejects with a HostError carrying the CnmError code */
  call<T = unknown>(op: string, ...args: unknown[]): Promise<T>;
  close(): Promise<void>;
}

/** Start a host process; resolves once its controller is open and set up. */
export async function startHost(opts: ControllerOptions): Promise<ClusterHost> {
  const proc = spawn(process.execPath, [...(fromSource ? ['--import', 'tsx'] : []), script, JSON.stringify(opts)], { stdio: ['pipe', 'pipe', 'inherit'] });
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
