// The `cli` section: what a `cnm` command costs as a process, beside Node's own
// start-up (`node -e 0`), in one interleaved run: `cnm --version`, `cnm network ls`
// (read-only: no host set-up, no addon) right after a change (it reads the store)
// and again with nothing changed since (it reads the listing file kept beside the
// store), and `cnm network connect` (a sandbox made before; the connect alone is
// timed), on a host netns of its own; beside them the floors: loading lmdb-js,
// and lmdb-js with the addon.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { NetworkController, native } from '../dist/index.js';

const BIN = fileURLToPath(new URL('../bin/cnm.js', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));

function timed(args) {
  const t = performance.now();
  execFileSync(process.execPath, args, { stdio: 'ignore', cwd: ROOT });
  return performance.now() - t;
}

export async function cliBench({ tag, stateDir, rows, summarize, n = 30 }) {
  const host = `${tag}-clih`;
  const dir = `${stateDir}/cli`;
  await native.netnsCreate(host);
  const g = ['--host-netns', host, '--state-dir', dir];
  const ctl = await NetworkController.open({ hostNetns: host, stateDir: dir });
  const sandboxes = [];
  try {
    await ctl.createNetwork({ name: 'clinet', ipam: [{ subnet: '10.170.0.0/16' }] });
    await ctl.createNetwork({ name: 'cliseed', internal: true, ipam: [{ subnet: '10.171.0.0/16' }] });
    const node = [];
    // the floors under any command that reads the state (LMDB) and does kernel work (the addon)
    const lmdb = [];
    const lmdbAddon = [];
    const version = [];
    const ls = [];
    const lsAgain = [];
    const connect = [];
    for (let i = 0; i < n; i++) {
      node.push(timed(['-e', '0']));
      lmdb.push(timed(['-e', "require('lmdb')"]));
      lmdbAddon.push(timed(['-e', "require('lmdb'); require('./index.js')"]));
      version.push(timed([BIN, '--version']));
      ls.push(timed([BIN, ...g, 'network', 'ls']));
      lsAgain.push(timed([BIN, ...g, 'network', 'ls']));
      const sb = `${tag}-cli${i}`;
      await ctl.createSandbox({ name: sb, net: 'cliseed' });
      sandboxes.push(sb);
      connect.push(timed([BIN, ...g, 'network', 'connect', 'clinet', sb]));
    }
    const base = summarize(`[cli] node -e 0 (Node's own start-up, N=${n})`, node);
    rows.push(base);
    for (const [name, xs] of [
      ["node -e \"require('lmdb')\" (the store's load: a floor)", lmdb],
      ["node -e \"require('lmdb'); require('./index.js')\" (store + addon: a floor)", lmdbAddon],
      ['cnm --version', version],
      ['cnm network ls (after a change: reads the store)', ls],
      ['cnm network ls (nothing changed since the last ls)', lsAgain],
      ['cnm network connect', connect],
    ]) {
      const r = summarize(`[cli] ${name} (N=${n})`, xs);
      const over = `node + ${(r.p50 - base.p50).toFixed(0)} ms`;
      r.target = name.includes('floor') ? over : `${over} (target <= node + 30)`;
      rows.push(r);
    }
  } finally {
    await ctl.close();
    await native.netnsDeleteMany([...sandboxes, host]).catch(() => undefined);
  }
}
