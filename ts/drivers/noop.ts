/**
 * Drivers with no kernel work of their own: `host` (sandboxes use the host netns
 * itself) and `null` (the `none` network: a netns with only lo, no addresses).
 * Each has exactly one network, the predefined one.
 */
import type { Driver, RepairResult } from './driver.js';

export class NoopDriver implements Driver {
  readonly usesIpam = false;
  readonly singleton = true;
  constructor(
    readonly name: 'host' | 'null',
    /** host sandboxes share the host netns; none sandboxes get one of their own */
    readonly ownNetns: boolean,
  ) {}
  prepareNetwork(): void {}
  async createNetwork(): Promise<void> {}
  async deleteNetwork(): Promise<void> {}
  async rollbackNetwork(): Promise<void> {}
  createEndpoint(): void {}
  async deleteEndpoint(): Promise<void> {}
  async join(): Promise<{ mac?: string }> {
    return {};
  }
  /** join does nothing in the kernel: there is nothing to be incomplete */
  async endpointComplete(): Promise<boolean> {
    return true;
  }
  async leave(): Promise<void> {}
  async programExternalConnectivity(): Promise<void> {}
  async revokeExternalConnectivity(): Promise<void> {}
  async repair(): Promise<RepairResult> {
    return { changed: [], lost: [] };
  }
}
