// A controller in a child process, for the multi-process tests:
//   node --import tsx ctl-worker.ts <stateDir> <hostNs> sandboxes <network> <prefix> <count>
//   node --import tsx ctl-worker.ts <stateDir> <hostNs> create-network <name> <startAtMs>
// Prints one JSON line with what it did.
import { NetworkController } from '../../ts/controller.js';
import { CnmError } from '../../ts/errors.js';

const [stateDir, hostNs, mode, ...rest] = process.argv.slice(2);
const ctl = await NetworkController.open({ stateDir: stateDir!, hostNetns: hostNs! });
try {
  if (mode === 'sandboxes') {
    const [network, prefix, count] = rest;
    const made = await Promise.all(
      Array.from({ length: Number(count) }, async (_, i) => {
        const sb = await ctl.createSandbox({ name: `${prefix}-${i}`, net: network! });
        return sb.inspect().Networks[network!]!.IPAddress;
      }),
    );
    console.log(JSON.stringify({ addresses: made }));
  } else if (mode === 'create-network') {
    const [name, startAt] = rest;
    await new Promise((r) => setTimeout(r, Math.max(0, Number(startAt) - Date.now())));
    try {
      const n = await ctl.createNetwork({ name: name! });
      console.log(JSON.stringify({ ok: n.id }));
    } catch (e) {
      if (!(e instanceof CnmError)) throw e;
      console.log(JSON.stringify({ code: e.code }));
    }
  }
} finally {
  await ctl.close();
}
