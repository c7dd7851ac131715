/** A real etcd on loopback for the cluster tests: see ts/sim/local-etcd.ts (shared with the demo and the bench). */
export { etcdBin, startEtcd, type LocalEtcd as TestEtcd } from '../../ts/sim/local-etcd.js';
