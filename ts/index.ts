/**
 * cnm: Docker's Container Network Model for Node.
 *
 * ```ts
 * import { NetworkController } from 'cnm';
 * const ctl = await NetworkController.open({ hostNetns: 'lab' });
 * await ctl.createNetwork({ name: 'web', ipam: [{ subnet: '10.1.0.0/24' }] });
 * await ctl.createSandbox({ name: 'a', net: 'web' });
 * ```
 */
export { NetworkController, DEFAULT_STATE_DIR, DEFAULT_BRIDGE_DEVICE } from './controller.js';
export type { CheckReport } from './controller.js';
export type { ControllerOptions, NetworkCreateOptions, IpamPoolRequest, ConnectOptions, SandboxCreateOptions } from './controller.js';
export { Network } from './network.js';
export type { NetworkInspect, NetworkContainer } from './network.js';
export { Endpoint } from './endpoint.js';
export type { EndpointInspect } from './endpoint.js';
export { Sandbox } from './sandbox.js';
export type { SandboxInspect, SandboxNetwork } from './sandbox.js';
export { CnmError, ErrorCodes } from './errors.js';
export type { ErrorCode, ErrorDetails } from './errors.js';
export type { ClusterHostInfo } from './ops/cluster-hosts.js';
export type { EndpointRecord, NetworkRecord, SandboxRecord } from './types.js';
export type { ReconcileReport } from './reconcile.js';
export type { StoreVerdict } from './store/store.js';
export type { CnmEvent, EventFilters, EventQuery } from './events.js';
export { setLogLevel, setLogSink } from './log.js';
export type { LogLevel, LogSink } from './log.js';
export { DEFAULT_POOLS } from './ipam/default-pools.js';
export type { DefaultPool } from './ipam/default-pools.js';
export { native } from './native.js';
