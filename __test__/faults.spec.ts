// Fault injection at every step boundary of every operation, as an error and as a
// crash (SIGKILL): afterwards store and kernel agree, and the operation either did
// not happen at all or happened completely. After an error the operation's own
// undo (or, past its point of no return, its remaining steps) must get there
// alone: the check runs no reconcile. After a crash, reconcile is what repairs.
import test from 'ava';
import { FAULT_POINTS, NETCORE_FAULT_POINTS } from '../ts/fault.js';
import { cnm } from './helpers/cli.js';
import { type Summary, checkConsistency } from './helpers/consistency.js';
import { type IsolatedHost, isolatedHost } from './helpers/host.js';

let host: IsolatedHost;
let g: string[];
const ok = (args: string[]) => {
  const r = cnm([...g, ...args]);
  if (r.code !== 0) throw new Error(`cnm ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};
const maybe = (args: string[]) => cnm([...g, ...args]);

test.before(async () => {
  host = await isolatedHost('flt');
  g = ['--state-dir', host.stateDir, '--host-netns', host.ns];
  ok(['network', 'create', '--subnet', '10.150.0.0/24', 'base']);
  ok(['network', 'create', '--subnet', '10.152.0.0/24', 'other']);
  ok(['sandbox', 'create', '--net', 'base', host.name('s0')]);
});
test.after.always(async () => {
  await host?.cleanup();
});

interface Op {
  /** make the precondition hold */
  setup: () => void;
  run: string[];
  /** true once the operation has happened */
  done: (s: Summary) => boolean;
  /** back to the baseline */
  reset: () => void;
}

const fsb = () => host.name('fsb');
const s0 = () => host.name('s0');
const ops: Record<string, Op> = {
  'network.create': {
    setup: () => undefined,
    run: ['network', 'create', '--subnet', '10.151.0.0/24', 'fnet'],
    done: (s) => s.networks.includes('fnet'),
    reset: () => void maybe(['network', 'rm', 'fnet']),
  },
  'network.rm': {
    setup: () => void ok(['network', 'create', '--subnet', '10.151.0.0/24', 'fnet']),
    run: ['network', 'rm', 'fnet'],
    done: (s) => !s.networks.includes('fnet'),
    reset: () => void maybe(['network', 'rm', 'fnet']),
  },
  'sandbox.create': {
    setup: () => undefined,
    get run() {
      return ['sandbox', 'create', '--net', 'base', '-p', '18080:80', fsb()];
    },
    done: (s) => fsb() in s.sandboxes && s.ports.length === 1,
    reset: () => void maybe(['sandbox', 'rm', fsb()]),
  },
  'sandbox.rm': {
    setup: () => void ok(['sandbox', 'create', '--net', 'base', '-p', '18080:80', fsb()]),
    get run() {
      return ['sandbox', 'rm', fsb()];
    },
    done: (s) => !(fsb() in s.sandboxes) && s.ports.length === 0,
    reset: () => void maybe(['sandbox', 'rm', fsb()]),
  },
  connect: {
    setup: () => undefined,
    get run() {
      return ['network', 'connect', '-p', '19090:90', 'other', s0()];
    },
    done: (s) => 'other' in (s.sandboxes[s0()] ?? {}) && s.ports.length === 1,
    reset: () => void maybe(['network', 'disconnect', 'other', s0()]),
  },
  disconnect: {
    setup: () => void ok(['network', 'connect', '-p', '19090:90', 'other', s0()]),
    get run() {
      return ['network', 'disconnect', 'other', s0()];
    },
    done: (s) => !('other' in (s.sandboxes[s0()] ?? {})) && s.ports.length === 0,
    reset: () => void maybe(['network', 'disconnect', 'other', s0()]),
  },
};

/** Points after which the operation goes forward instead of back. */
const FORWARD = new Set(['network.rm.kernel', 'disconnect.leave', 'sandbox.rm.netns', 'sandbox.rm.leave']);
/**
 * A removal marked in the store by a process that then died is finished by
 * reconcile, and so is an endpoint whose kernel side was complete.
 */
const FORWARD_ON_CRASH = new Set(['network.rm.mark', 'sandbox.rm.mark', 'connect.kernel']);
/**
 * The endpoint's commit mark (written by group commit after connect returned): when
 * it cannot be written the connect has still succeeded, and it is reconcile, finding
 * the kernel side complete, that records the endpoint done.
 */
const MARK = new Set(['connect.mark']);

/** The operation that reaches each netcore point. */
const NETCORE_OP: Record<string, string> = {
  'netcore.netns.created': 'sandbox.create',
  'netcore.bridge.created': 'network.create',
  'netcore.veth.created': 'connect',
};

for (const point of [...FAULT_POINTS, ...NETCORE_FAULT_POINTS]) {
  for (const mode of ['error', 'crash'] as const) {
    test.serial(`${point} (${mode})`, async (t) => {
      const opName = NETCORE_OP[point] ?? point.slice(0, point.lastIndexOf('.'));
      const op = ops[opName]!;
      op.setup();
      const before = await checkConsistency(host);
      t.deepEqual(before.problems, [], 'consistent before');
      const r = cnm([...g, ...op.run], { CNM_FAULT: mode === 'crash' ? `${point}:crash` : point });
      if (mode === 'crash') t.is(r.code, -1, `killed by SIGKILL (stderr: ${r.stderr})`);
      else {
        if (MARK.has(point)) t.is(r.code, 0, 'the connect itself succeeded');
        else t.not(r.code, 0);
        t.regex(r.stderr, new RegExp(`fault injected at ${point.replace(/\./g, '\\.')}`));
      }
      const reconciles = mode === 'crash' || MARK.has(point);
      const after = await checkConsistency(host, { reconcile: reconciles });
      t.deepEqual(after.problems, [], reconciles ? 'store and kernel agree after reconcile' : 'store and kernel agree, with no reconcile');
      const committed = point.endsWith('.commit') || FORWARD.has(point) || MARK.has(point) || (mode === 'crash' && FORWARD_ON_CRASH.has(point));
      if (committed) t.true(op.done(after.summary), `${opName} happened: ${JSON.stringify(after.summary)}`);
      else t.deepEqual(after.summary, before.summary, `${opName} rolled back`);
      op.reset();
      t.deepEqual((await checkConsistency(host)).problems, []);
    });
  }
}
