// A controller in a child process, for the multi-process tests:
//   node --import tsx ctl-worker.ts <stateDir> <hostNs> sandboxes <network> <prefix> <count>
//   node --import tsx ctl-worker.ts <stateDir> <hostNs> create-network <name>
// Sets the host up, says `ready` and starts on `go` (see barrier.ts), so that
// the processes race on the operation itself; then prints one JSON line with what it
// did, and when it got the go and finished (goAt, doneAt: ms since the epoch).
import { NetworkController } from '../../ts/controller.js';
import { CnmError } from '../../ts/errors.js';
import { waitForGo } from './barrier.js';

const [stateDir, hostNs, mode, ...rest] = process.argv.slice(2);
const ctl = await NetworkController.open({ stateDir: stateDir!, hostNetns: hostNs! });
try {
  await ctl.ready();
  const goAt = await waitForGo();
  const report = (what: Record<string, unknown>) => console.log(JSON.stringify({ ...what, goAt, doneAt: Date.now() }));
  if (mode === 'sandboxes') {
    const [network, prefix, count] = rest;
    const made = await Promise.all(
      Array.from({ length: Number(count) }, async (_, i) => {
        const sb = await ctl.createSandbox({ name: `${prefix}-${i}`, net: network! });
        return sb.inspect().Networks[network!]!.IPAddress;
      }),
    );
    report({ addresses: made });
  } else if (mode === 'create-network') {
    const [name] = rest;
    try {
      const n = await ctl.createNetwork({ name: name! });
      report({ ok: n.id });
    } catch (e) {
      if (!(e instanceof CnmError)) throw e;
      report({ code: e.code });
    }
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
} finally {
  await ctl.close();
}
