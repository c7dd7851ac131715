/**
 * The facade over the generated napi loader (../index.js): users and the rest of
 * cnm import this, never the raw binding. Every native rejection becomes a
 * CnmError with the code netcore gave it.
 */
import { createRequire } from 'node:module';
import { CnmError, type ErrorCode, ErrorCodes } from './errors.js';
import type { NativeBinding } from './native-api.js';

export type * from './native-api.js';

const require = createRequire(import.meta.url);

/** The platform package name of this machine, as napi-rs names them (cnm-linux-x64-gnu…). */
export function platformPackage(): string {
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  const libc = header?.glibcVersionRuntime ? 'gnu' : 'musl';
  return `cnm-${process.platform}-${process.arch}${process.platform === 'linux' ? `-${libc}` : ''}`;
}

function load(): NativeBinding {
  try {
    return require('../index.js') as NativeBinding;
  } catch (e) {
    const pkg = platformPackage();
    const supported = ['cnm-linux-x64-gnu', 'cnm-linux-arm64-gnu', 'cnm-linux-x64-musl', 'cnm-linux-arm64-musl'];
    const what =
      process.platform !== 'linux'
        ? `cnm runs on Linux only (network namespaces, netlink); this is ${process.platform}`
        : supported.includes(pkg)
          ? `the native part of cnm for this machine is the package ${pkg}: install it (npm i ${pkg}; an install with --omit=optional or --no-optional leaves it out), or build it from source with Rust (npm run build in a clone of cnm)`
          : `there is no prebuilt native part of cnm for ${pkg}: build it from source with Rust (npm run build in a clone of cnm)`;
    throw new CnmError('ERR_IO', `cannot load the cnm native addon: ${what}. Loader said: ${(e as Error).message.split('\n')[0]}`, {}, { cause: e });
  }
}

interface NativeErrorBody {
  code?: string;
  message?: string;
  errno?: number;
  ifname?: string;
  netns?: string;
}

/** Turn a native error (code + JSON message) into a CnmError. */
export function fromNativeError(e: unknown): CnmError {
  if (e instanceof CnmError) return e;
  const err = e as { code?: unknown; message?: unknown };
  const text = typeof err?.message === 'string' ? err.message : String(e);
  let body: NativeErrorBody = {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === 'object') body = parsed as NativeErrorBody;
  } catch {
    body = { message: text };
  }
  const codeRaw = body.code ?? (typeof err?.code === 'string' ? err.code : 'ERR_KERNEL');
  const code = (codeRaw in ErrorCodes ? codeRaw : 'ERR_KERNEL') as ErrorCode;
  return new CnmError(code, body.message ?? text, {
    errno: body.errno,
    ifname: body.ifname,
    netns: body.netns,
  });
}

/** napi-rs maps `Option<T>` fields from `undefined` only; null fields become absent. */
function dropNulls(a: unknown): unknown {
  if (a === null || typeof a !== 'object' || Array.isArray(a)) return a;
  return Object.fromEntries(Object.entries(a).filter(([, v]) => v !== null && v !== undefined));
}

let binding: NativeBinding | undefined;

function raw(): NativeBinding {
  binding ??= load();
  return binding;
}

const wrapped = new Map<string, unknown>();

/** The native binding with CnmError rejections; loaded on first use. */
export const native: NativeBinding = new Proxy({} as NativeBinding, {
  get(_t, prop: string) {
    const hit = wrapped.get(prop);
    if (hit !== undefined) return hit;
    const fn = (raw() as unknown as Record<string, unknown>)[prop];
    if (typeof fn !== 'function') return fn;
    const w = (...args: unknown[]) => {
      try {
        const r = (fn as (...a: unknown[]) => unknown)(...args.map(dropNulls));
        return r instanceof Promise ? r.catch((e: unknown) => Promise.reject(fromNativeError(e))) : r;
      } catch (e) {
        throw fromNativeError(e);
      }
    };
    wrapped.set(prop, w);
    return w;
  },
});
