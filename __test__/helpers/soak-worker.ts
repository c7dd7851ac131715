// Random create / connect / disconnect / publish / rm operations, forever, until
// the soak test kills the process:
//   node --import tsx soak-worker.ts <stateDir> <hostNs> <prefix> <seed>
import { NetworkController } from '../../ts/controller.js';
import { CnmError } from '../../ts/errors.js';

const [stateDir, hostNs, prefix, seedArg] = process.argv.slice(2);
let seed = Number(seedArg) || 1;
const rnd = (n: number) => {
  // xorshift: reproducible runs for a given seed
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return Math.abs(seed) % n;
};
const names = Array.from({ length: 6 }, (_, i) => `${prefix}-s${i}`);
const nets = ['soak-a', 'soak-b'];

const ctl = await NetworkController.open({ stateDir: stateDir!, hostNetns: hostNs! });
process.stdout.write('ready\n');
for (;;) {
  const name = names[rnd(names.length)]!;
  const net = nets[rnd(nets.length)]!;
  try {
    switch (rnd(7)) {
      case 0:
      case 1:
        await ctl.createSandbox({ name, net, ports: rnd(2) ? [{ containerPort: 80, hostPort: 20000 + rnd(5) }] : [] });
        break;
      case 2:
        await ctl.connect(net, name, { ports: rnd(2) ? [{ containerPort: 81 }] : [] });
        break;
      case 3:
        await ctl.disconnect(net, name);
        break;
      case 4:
        await ctl.removeSandbox(name);
        break;
      case 5:
        await ctl.createNetwork({ name: 'soak-c', ipam: [{ subnet: '10.181.0.0/24' }] });
        break;
      case 6:
        await ctl.removeNetwork('soak-c');
        break;
    }
    // one dot per operation that went through, so the test can tell work was done
    process.stdout.write('.');
  } catch (e) {
    if (!(e instanceof CnmError)) throw e;
  }
}
