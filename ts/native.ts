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

function load(): NativeBinding {
  try {
    return require('../index.js') as NativeBinding;
  } catch (e) {
    throw new CnmError('ERR_IO', `cannot load the cnm native addon (run "npm run build"): ${(e as Error).message}`);
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
