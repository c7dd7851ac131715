/**
 * Stable error codes. The daemon maps them to Docker's HTTP statuses; scripts may
 * match on them, so a code is never renamed once released.
 */
export const ErrorCodes = {
  ERR_INVALID_ARGUMENT: 400,
  ERR_NETWORK_NOT_FOUND: 404,
  ERR_SANDBOX_NOT_FOUND: 404,
  ERR_ENDPOINT_NOT_FOUND: 404,
  ERR_NOT_CONNECTED: 404,
  ERR_NAME_CONFLICT: 409,
  ERR_ALREADY_CONNECTED: 403,
  ERR_NETWORK_IN_USE: 403,
  ERR_SANDBOX_IN_USE: 409,
  ERR_PREDEFINED_NETWORK: 403,
  ERR_SUBNET_OVERLAP: 403,
  ERR_POOL_EXHAUSTED: 403,
  ERR_ADDRESS_IN_USE: 403,
  ERR_PORT_ALLOCATED: 409,
  ERR_UNKNOWN_DRIVER: 404,
  ERR_PERMISSION: 403,
  ERR_STORE: 500,
  /** a record of the store failed its checksum (the file named was damaged on disk) */
  ERR_STORE_DAMAGED: 500,
  /** the state dir's file system is full: the operation changed nothing */
  ERR_NO_SPACE: 507,
  ERR_KERNEL: 500,
  ERR_NETNS_NOT_FOUND: 404,
  ERR_NETNS_EXISTS: 409,
  ERR_LINK_NOT_FOUND: 404,
  ERR_LINK_EXISTS: 409,
  ERR_IO: 500,
  ERR_FAULT_INJECTED: 500,
  /** the kernel lacks a feature the request needs (e.g. 802.1q VLANs: module 8021q) */
  ERR_NOT_SUPPORTED: 501,
  /** a macvlan parent interface is taken by another network in a way that excludes this one */
  ERR_PARENT_IN_USE: 409,
  /** a remote plugin answered with an error, or could not be reached */
  ERR_PLUGIN: 500,
  /** another daemon is serving on the socket asked for */
  ERR_SOCKET_IN_USE: 409,
  /** the host netns is managed by another state dir */
  ERR_HOST_IN_USE: 409,
  /** the cluster store (etcd) did not answer in time: global operations wait for it */
  ERR_CLUSTER_UNAVAILABLE: 503,
  /** the controller (or its store) was closed */
  ERR_CLOSED: 500,
  /** a request body over the daemon's limit (1 MiB) */
  ERR_TOO_LARGE: 413,
  /** the daemon is shutting down: the request was not started */
  ERR_SHUTTING_DOWN: 503,
  /** a bug in cnm: the cause says what went wrong */
  ERR_INTERNAL: 500,
} as const;

/** One of the stable codes a {@link CnmError} carries. */
export type ErrorCode = keyof typeof ErrorCodes;

const BRAND = Symbol.for('cnm.CnmError');

/** Structured fields attached to an error, next to its message. */
export interface ErrorDetails {
  /** the offending value, as the user gave it */
  value?: unknown;
  errno?: number;
  ifname?: string;
  netns?: string;
  subnet?: string;
  network?: string;
  sandbox?: string;
  /** the store key of a damaged record */
  key?: string;
  /** errors of undo or clean-up steps of the same operation that also failed */
  undoErrors?: Error[];
  /** the `cnm` command was used wrongly (unknown command or flag, missing argument): it exits 125, as docker */
  usage?: boolean;
}

/**
 * The one error class of cnm: a stable `code`, a message a person can act on, and
 * structured details. `instanceof` works across duplicate copies of the package.
 * An error that wraps another keeps it as `cause`.
 */
export class CnmError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CnmError';
    this.code = code;
    this.details = details;
    Object.defineProperty(this, BRAND, { value: true });
  }

  /** HTTP status Docker would answer with for this error. */
  get status(): number {
    return ErrorCodes[this.code] ?? 500;
  }

  static override [Symbol.hasInstance](x: unknown): boolean {
    return typeof x === 'object' && x !== null && (x as Record<symbol, unknown>)[BRAND] === true;
  }
}

/** Shorthand for ERR_INVALID_ARGUMENT with the offending value attached. */
export function invalid(message: string, value?: unknown): CnmError {
  return new CnmError('ERR_INVALID_ARGUMENT', message, { value });
}

/**
 * Wrap anything thrown into a CnmError, keeping CnmErrors as they are. Kernel and
 * store failures arrive as CnmErrors already; a system error from Node (an errno
 * code such as ENOENT) becomes ERR_IO, and anything else is a bug: ERR_INTERNAL.
 * Both keep the original as `cause`.
 */
export function toCnmError(e: unknown, context?: string): CnmError {
  if (e instanceof CnmError) return e;
  const err = e instanceof Error ? e : new Error(String(e));
  const msg = context ? `${context}: ${err.message}` : err.message;
  const sys = (err as NodeJS.ErrnoException).code;
  const errno = (err as NodeJS.ErrnoException).errno;
  if (typeof sys === 'string' && /^E[A-Z0-9]+$/.test(sys)) {
    return new CnmError('ERR_IO', msg, { errno: typeof errno === 'number' ? Math.abs(errno) : undefined }, { cause: err });
  }
  return new CnmError('ERR_INTERNAL', `internal error (please report it): ${msg}`, {}, { cause: err });
}
