// A library process whose second connect runs its join ahead of its record
// (ts/ops/process-lease.ts), for join-ahead.spec.ts:
//   node --import tsx ahead-worker.ts <stateDir> <hostNs> <prefix> connect|orphan
// Makes networks <prefix>-a and <prefix>-b and sandboxes <prefix>-s1, -s2 on -a,
// connects s1 to -b (its transaction writes the lease) and prints `leased`; then
// `connect`: connects s2 to -b (CNM_FAULT may stop it) and prints the outcome;
// `orphan`: makes a veth on -b's bridge into s2 that no record names, as a join
// ahead of a transaction that never committed would, and dies by SIGKILL.
import { NetworkController } from '../../ts/controller.js';
import { CnmError } from '../../ts/errors.js';
import { native } from '../../ts/native.js';

const [stateDir, hostNs, prefix, mode] = process.argv.slice(2) as [string, string, string, string];
const ctl = await NetworkController.open({ stateDir, hostNetns: hostNs });
try {
  await ctl.ready();
  await ctl.createNetwork({ name: `${prefix}-a`, ipam: [{ subnet: '10.171.0.0/24' }] });
  const b = await ctl.createNetwork({ name: `${prefix}-b`, ipam: [{ subnet: '10.172.0.0/24' }] });
  await ctl.createSandbox({ name: `${prefix}-s1`, net: `${prefix}-a` });
  await ctl.createSandbox({ name: `${prefix}-s2`, net: `${prefix}-a` });
  await ctl.connect(`${prefix}-b`, `${prefix}-s1`);
  console.log('leased');
  if (mode === 'connect') {
    try {
      await ctl.connect(`${prefix}-b`, `${prefix}-s2`);
      console.log('connected');
    } catch (e) {
      if (!(e instanceof CnmError)) throw e;
      console.log(e.code);
    }
  } else {
    await native.attachVeth({ hostNetns: hostNs, sandboxNetns: `${prefix}-s2`, hostIfname: 'vahead0', master: b.record.bridge!, ifname: 'eth7', addresses: ['10.172.0.200/24'] });
    console.log('orphan');
    process.kill(process.pid, 'SIGKILL');
  }
} finally {
  await ctl.close();
}
