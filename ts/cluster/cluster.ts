/**
 * This host's membership of a cluster: the global store on etcd, the host's id
 * (kept in the local store, so it stays the same across restarts), its lease
 * (keep-alive; its ephemeral keys go when it dies) and its underlay address,
 * the VTEP of its overlay tunnels.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { CnmError, invalid } from '../errors.js';
import { native } from '../native.js';
import { formatIp, parseCidr, parseIp } from '../net/ip.js';
import { etcdEndpoints } from '../ops/options.js';
import type { ControllerOptions } from '../options.js';
import type { EtcdStore } from '../store/etcd-store.js';
import type { Store } from '../store/store.js';
import { newId } from '../validate.js';

/** A host of the cluster, as its record in the global store says. */
export interface HostRecord {
  id: string;
  /** its underlay address: where its VTEP is */
  advertise: string;
  hostname: string;
}

/** Global store keys of the cluster (the network, endpoint and IPAM keys are the local ones'). */
export const clusterKeys = {
  host: (id: string) => `host/${id}`,
  hosts: 'host/',
  /** an endpoint of a global network as the other hosts see it, bound to its host's lease */
  peer: (netId: string, epId: string) => `peer/${netId}/${epId}`,
  peers: (netId: string) => `peer/${netId}/`,
  vni: (vni: number) => `vni/${vni}`,
};

/**
 * The per-network key prefixes: a host mirrors them only for the networks it
 * has endpoints on (or works on right now), so endpoint events reach only the
 * hosts that need them.
 */
export const PARTITIONED = ['ipam/', 'peer/'];
/** The partition prefixes of one network's keys. */
export const partitionsOf = (netId: string) => PARTITIONED.map((p) => `${p}${netId}/`);

/** One endpoint of a global network, for the other hosts' peer tables. */
export interface PeerRecord {
  host: string;
  /** the VTEP of its host */
  vtep: string;
  mac: string;
  /** its addresses without prefix length */
  ips: string[];
  /** the id of its sandbox (absent when published with its address, before the sandbox joins) */
  sandbox?: string;
  /** the names it answers to in the embedded DNS of the other hosts (see dns/names.ts) */
  names?: string[];
  /** the name its addresses resolve back to */
  ptr?: string;
}

const LOCAL_ID_KEY = 'cluster/host-id';

export class Cluster {
  /** networks followed for as long as this host has endpoints on them */
  private readonly kept = new Map<string, Promise<() => void>>();
  /** operations in flight per network: its keys stay followed meanwhile */
  private readonly holds = new Map<string, number>();

  private constructor(
    readonly store: EtcdStore,
    readonly hostId: string,
    readonly advertise: string,
    /** the MTU of the underlay link the advertise address is on */
    readonly underlayMtu: number,
  ) {}

  /** The advertise address, which must be one of this host's, and the MTU of its link. */
  static async checkAdvertise(opts: ControllerOptions, hostNetns: string | null): Promise<{ advertise: string; mtu: number }> {
    const advertise = formatIp(parseIp(opts.clusterAdvertise!, 'cluster advertise address'));
    const links = await native.listLinks(hostNetns);
    const link = links.find((l) =>
      l.addresses.some((a) => {
        const c = parseCidr(a, 'address');
        return formatIp({ family: c.family, value: c.addr }) === advertise;
      }),
    );
    if (!link) {
      throw invalid(`cluster advertise address ${advertise} is not an address of this host${hostNetns ? ` (netns ${hostNetns})` : ''}: give the address the other hosts reach it on`, advertise);
    }
    return { advertise, mtu: link.mtu };
  }

  /**
   * Join: check the advertise address is this host's, connect to etcd, take or
   * make the host id, grant the lease and publish the host record.
   * ERR_CLUSTER_UNAVAILABLE when etcd does not answer; nothing is left behind.
   */
  static async join(opts: ControllerOptions, hostNetns: string | null, local: Store): Promise<Cluster> {
    const { advertise, mtu } = await Cluster.checkAdvertise(opts, hostNetns);
    let id = local.get<string>(LOCAL_ID_KEY);
    if (id === undefined) {
      const fresh = newId();
      id = await local.txn((tx) => {
        const have = tx.get<string>(LOCAL_ID_KEY);
        if (have !== undefined) return have;
        tx.put(LOCAL_ID_KEY, fresh);
        return fresh;
      });
    }
    const store = await Cluster.openStore(opts);
    const cluster = new Cluster(store, id, advertise, mtu);
    try {
      const adopted = opts.clusterLeaseId ?? (await opts.clusterLease?.());
      if (adopted !== undefined) store.adoptLease(adopted);
      else await store.grantLease(opts.clusterLeaseTtl ?? 10);
      await cluster.publishHost();
    } catch (e) {
      await store.close();
      throw e;
    }
    store.onRenewed(() => void cluster.publishHost().catch(() => undefined));
    return cluster;
  }

  /** This host's id in the cluster, from its local store (undefined before it first joined). */
  static hostIdOf(local: Pick<Store, 'get'>): string | undefined {
    return local.get<string>(LOCAL_ID_KEY);
  }

  /** The cluster's store as `opts` name it, opened without a lease (reads, watches). */
  static async openStore(opts: ControllerOptions): Promise<EtcdStore> {
    let endpoints = etcdEndpoints(opts.clusterStore!);
    const tls = opts.clusterTls;
    let pem: { ca?: Buffer; cert?: Buffer; key?: Buffer } | undefined;
    if (tls) {
      endpoints = endpoints.map((u) => u.replace(/^http:/, 'https:'));
      const read = (f: string | undefined, what: string) => {
        if (f === undefined) return undefined;
        try {
          return readFileSync(f);
        } catch (e) {
          throw new CnmError('ERR_INVALID_ARGUMENT', `cannot read the cluster TLS ${what} ${f}: ${(e as Error).message}`, { value: f });
        }
      };
      pem = { ca: read(tls.ca, 'CA'), cert: read(tls.cert, 'certificate'), key: read(tls.key, 'key') };
    }
    // loaded here only: the etcd client weighs about 160 ms of start-up that local commands never pay
    const { EtcdStore } = await import('../store/etcd-store.js');
    return EtcdStore.open({ endpoints, prefix: `cnm/${opts.clusterName ?? 'default'}/`, partitioned: PARTITIONED, tls: pem });
  }

  /**
   * A member on a store opened and leased by the caller, with an advertise
   * address it vouches for: the scale simulation's hosts, which program no kernel.
   */
  static async simulated(store: EtcdStore, hostId: string, advertise: string): Promise<Cluster> {
    const cluster = new Cluster(store, hostId, advertise, 1500);
    await cluster.publishHost();
    return cluster;
  }

  private async publishHost(): Promise<void> {
    const rec: HostRecord = { id: this.hostId, advertise: this.advertise, hostname: hostname() };
    await this.store.txn((tx) => tx.put(clusterKeys.host(this.hostId), rec, { ephemeral: true }));
  }

  /** The hosts alive now (their lease holds), by id. */
  hosts(): Map<string, HostRecord> {
    return new Map(this.store.range<HostRecord>(clusterKeys.hosts).map(([, h]) => [h.id, h]));
  }

  /**
   * Mirror a network's per-network keys (its addresses and peers) until the
   * returned function is called. ERR_CLUSTER_UNAVAILABLE when etcd does not answer.
   */
  follow(netId: string): Promise<() => void> {
    return this.store.followAll(partitionsOf(netId));
  }

  /** Follow a network from now on (this host has, or is about to have, endpoints on it). */
  async keep(netId: string): Promise<void> {
    let p = this.kept.get(netId);
    if (!p) {
      p = this.follow(netId);
      this.kept.set(netId, p);
      p.catch(() => {
        if (this.kept.get(netId) === p) this.kept.delete(netId);
      });
    }
    await p;
  }

  /** Stop following a network kept by {@link keep} (its last endpoint here is gone). */
  unkeep(netId: string): void {
    const p = this.kept.get(netId);
    if (!p || this.held(netId)) return;
    this.kept.delete(netId);
    void p.then((letGo) => letGo()).catch(() => undefined);
  }

  /** Networks kept here. */
  keptNetworks(): string[] {
    return [...this.kept.keys()];
  }

  /**
   * Keep a network for an operation in flight: {@link unkeep} waits for the
   * returned function, so a concurrent last disconnect cannot drop the keys
   * this operation works on.
   */
  async hold(netId: string): Promise<() => void> {
    this.holds.set(netId, (this.holds.get(netId) ?? 0) + 1);
    let once = false;
    const letGo = () => {
      if (once) return;
      once = true;
      const n = (this.holds.get(netId) ?? 1) - 1;
      if (n > 0) this.holds.set(netId, n);
      else this.holds.delete(netId);
    };
    try {
      await this.keep(netId);
    } catch (e) {
      letGo();
      throw e;
    }
    return letGo;
  }

  /** Whether an operation holds a network now. */
  held(netId: string): boolean {
    return (this.holds.get(netId) ?? 0) > 0;
  }

  /** Leave: this host's ephemeral keys stay until its lease runs out, so a quick restart keeps its peers. */
  async close(): Promise<void> {
    await this.store.close();
  }
}
