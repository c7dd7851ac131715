/**
 * The contract between the TypeScript layer and the Rust addon (crates/netcore):
 * the declarations napi-rs generates from the Rust code into ../index.d.ts, taken
 * as they are, so that the two cannot differ. `npm run lint` and `npm test` build
 * the addon (and so index.d.ts) before tsc reads this file.
 *
 * Netns arguments: `undefined`/`null` means the process's own network namespace;
 * a string is a named netns, i.e. the file /run/netns/<name>.
 *
 * Every rejection is an Error whose `code` is one of NativeErrorCode and whose
 * `message` is a JSON object: {"code","message","errno"?,"ifname"?,"netns"?}.
 */
import type * as Binding from '../index.js';
import type { ErrorCode } from './errors.js';

export type {
  AdoptInfo,
  AdoptSpec,
  BridgeInfo,
  BridgeSpec,
  DnsEndpoint,
  DnsStats,
  FirewallBatch,
  FirewallLink,
  FirewallNetwork,
  FirewallState,
  LinkInfo,
  MacvlanInfo,
  MacvlanSpec,
  NativeErrorCode,
  Peer,
  PeerChanges,
  PortMapping,
  RetireSpec,
  RouteInfo,
  StaticRoute,
  VethInfo,
  VethSpec,
  VlanInfo,
  VlanSpec,
  VxlanInfo,
  VxlanSpec,
} from '../index.js';

/** Every function the generated loader exports. */
export type NativeBinding = Omit<typeof Binding, '__napiBindingTarget'>;

/** Which firewall backend programs the rules. */
export type FirewallBackendName = Binding.FirewallBatch['backend'];

/**
 * Compile-time proof that every code netcore can reject with (the Rust ErrorCode
 * enum, through index.d.ts) is one ts/errors.ts knows: adding a code to Rust
 * without adding it to ErrorCodes fails `tsc`.
 */
export type NativeCodesAreKnown = Proves<[Binding.NativeErrorCode] extends [ErrorCode] ? true : false>;
type Proves<T extends true> = T;
