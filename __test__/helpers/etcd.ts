/** A real etcd on loopback for the cluster tests: see scripts/local-etcd.js (shared with the bench). */
export { etcdBin, startEtcd } from '../../scripts/local-etcd.js';

export interface TestEtcd {
  /** the client URL, http://127.0.0.1:PORT */
  url: string;
  /** stop the server (SIGTERM), keeping its data */
  stop(): Promise<void>;
  /** start it again on the same ports with the same data */
  start(): Promise<void>;
  cleanup(): Promise<void>;
}
