// Remote plugins that misbehave: a network driver and an IPAM driver that
// answer garbage, answer the wrong shape, hang, close in the middle of an
// answer, answer 100 MB, or die between calls. Each time the operation fails
// with ERR_PLUGIN within a bounded time, leaves nothing (no record, no link, the
// subnet free again), tells the driver to delete a network it may have made,
// and the controller serves other operations meanwhile.
import { mkdtempSync, rmSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { NetworkController } from '../ts/controller.js';
import type { CnmError } from '../ts/errors.js';
import { native } from '../ts/native.js';
import { isGrave } from '../ts/reaper.js';
import { type IsolatedHost, isolatedHost } from './helpers/host.js';

type Mode = 'ok' | 'garbage' | 'shape' | 'hang' | 'cut' | 'huge';
const MODES: Mode[] = ['garbage', 'shape', 'hang', 'cut', 'huge'];
const TIMEOUT = 1500;

let host: IsolatedHost;
let ctl: NetworkController;
let dir: string;

function answer(res: ServerResponse, v: unknown): void {
  res.writeHead(200, { 'Content-Type': 'application/vnd.docker.plugins.v1.2+json' });
  res.end(JSON.stringify(v));
}

/** A plugin that answers Activate and capabilities, and `method` as `mode` says; it records what it was asked. */
class BadPlugin {
  mode: Mode = 'ok';
  method = '';
  readonly calls: string[] = [];
  private server: Server;
  private readonly hung = new Set<ServerResponse>();

  constructor(
    readonly name: string,
    implementsWhat: string,
  ) {
    this.server = createServer((req: IncomingMessage, res: ServerResponse) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const m = (req.url ?? '').slice(1);
        this.calls.push(m);
        if (m === 'Plugin.Activate') return answer(res, { Implements: [implementsWhat] });
        if (m !== this.method || this.mode === 'ok') return answer(res, this.good(m, body));
        switch (this.mode) {
          case 'garbage':
            res.writeHead(200);
            return res.end('<html>not json{');
          case 'shape':
            return answer(res, m === 'IpamDriver.RequestPool' ? { PoolID: 7, Pool: 'not a cidr', Data: [] } : [1, 2, 3]);
          case 'hang':
            this.hung.add(res);
            return;
          case 'cut':
            res.writeHead(200, { 'Content-Length': 1000 });
            res.write('{"Pool": "10.');
            return setTimeout(() => res.socket?.destroy(), 20);
          case 'huge': {
            res.writeHead(200);
            const chunk = Buffer.alloc(1 << 20, 'x');
            let sent = 0;
            const push = () => {
              while (sent < 100 && res.write(chunk)) sent++;
              if (sent < 100 && !res.destroyed) res.once('drain', push);
              else if (sent >= 100) res.end();
            };
            return push();
          }
        }
      });
    });
  }

  /** What a well-behaved plugin answers. */
  private good(m: string, body: string): unknown {
    if (m === 'NetworkDriver.GetCapabilities') return { Scope: 'local' };
    if (m === 'IpamDriver.GetCapabilities') return { RequiresMACAddress: false };
    if (m === 'IpamDriver.GetDefaultAddressSpaces') return { LocalDefaultAddressSpace: 'l', GlobalDefaultAddressSpace: 'g' };
    if (m === 'IpamDriver.RequestPool') {
      const pool = (JSON.parse(body) as { Pool?: string }).Pool || '10.77.0.0/24';
      return { PoolID: pool, Pool: pool, Data: {} };
    }
    if (m === 'IpamDriver.RequestAddress') return { Address: '10.77.0.9/24', Data: {} };
    return {};
  }

  listen(): Promise<void> {
    return new Promise((r) => this.server.listen(join(dir, `${this.name}.sock`), () => r()));
  }

  /** Dies: stops listening and drops its socket. */
  async die(): Promise<void> {
    for (const r of this.hung) r.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  release(): void {
    for (const r of this.hung) r.socket?.destroy();
    this.hung.clear();
  }
}

let drv: BadPlugin;
let ipam: BadPlugin;

test.before(async () => {
  host = await isolatedHost('badplug');
  dir = mkdtempSync(join(tmpdir(), 'cnm-badplug-'));
  drv = new BadPlugin('baddrv', 'NetworkDriver');
  ipam = new BadPlugin('badipam', 'IpamDriver');
  await drv.listen();
  await ipam.listen();
  ctl = await host.open({ pluginDir: dir, pluginTimeoutMs: TIMEOUT });
  // the sandboxes' first network (a sandbox on none takes no other)
  await ctl.createNetwork({ name: 'seedp', internal: true, ipam: [{ subnet: '10.76.0.0/24' }] });
});
test.after.always(async () => {
  await ctl?.close();
  await drv?.die().catch(() => undefined);
  await ipam?.die().catch(() => undefined);
  await host?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// (retired links, which the reaper deletes a moment later, aside)
const links = async () => (await native.listLinks(host.ns)).filter((l) => !isGrave(l.group)).map((l) => l.name).sort();

/** Runs `op` against a plugin in `mode`; checks the failure, its time, that others are served meanwhile, and that nothing is left. */
async function expectPluginFailure(t: import('ava').ExecutionContext, what: string, op: () => Promise<unknown>): Promise<number> {
  const before = { nets: ctl.listNetworks().map((n) => n.name).sort(), links: await links() };
  const t0 = performance.now();
  const pending = op().then(
    () => undefined,
    (e: unknown) => e as CnmError,
  );
  // meanwhile: another network is made and listed at once
  const t1 = performance.now();
  await ctl.createNetwork({ name: 'bystander', ipam: [{ subnet: '10.78.0.0/24' }] });
  t.true(ctl.listNetworks().some((n) => n.name === 'bystander'));
  await ctl.removeNetwork('bystander');
  const others = performance.now() - t1;
  const err = await pending;
  const ms = performance.now() - t0;
  t.is(err?.code, 'ERR_PLUGIN', `${what}: ${err?.message}`);
  t.true(ms < 2 * TIMEOUT + 2000, `${what}: failed within a bound (${ms.toFixed(0)} ms)`);
  t.true(others < TIMEOUT, `${what}: others served meanwhile (${others.toFixed(0)} ms)`);
  t.deepEqual(ctl.listNetworks().map((n) => n.name).sort(), before.nets, `${what}: no record left`);
  t.deepEqual(await links(), before.links, `${what}: no link left`);
  return ms;
}

test.serial('a network driver that misbehaves on CreateNetwork: ERR_PLUGIN, nothing left, told to delete', async (t) => {
  drv.method = 'NetworkDriver.CreateNetwork';
  const times: string[] = [];
  for (const mode of MODES) {
    drv.mode = mode;
    drv.calls.length = 0;
    const ms = await expectPluginFailure(t, `driver ${mode}`, () => ctl.createNetwork({ name: `bd-${mode}`, driver: 'baddrv', ipam: [{ subnet: '10.77.0.0/24' }] }));
    drv.release();
    times.push(`${mode} ${ms.toFixed(0)} ms`);
    t.true(drv.calls.includes('NetworkDriver.DeleteNetwork'), `${mode}: the plugin was told to delete what it may have made`);
    // the subnet is free again
    drv.mode = 'ok';
    await ctl.createNetwork({ name: 'again', ipam: [{ subnet: '10.77.0.0/24' }] });
    await ctl.removeNetwork('again');
  }
  t.log(`failed after: ${times.join(', ')} (call limit ${TIMEOUT} ms)`);
});

test.serial('an IPAM driver that misbehaves on RequestPool and RequestAddress: ERR_PLUGIN, nothing left', async (t) => {
  for (const method of ['IpamDriver.RequestPool', 'IpamDriver.RequestAddress']) {
    ipam.method = method;
    for (const mode of MODES) {
      ipam.mode = method === 'IpamDriver.RequestPool' ? mode : 'ok';
      if (method === 'IpamDriver.RequestPool') {
        await expectPluginFailure(t, `ipam pool ${mode}`, () => ctl.createNetwork({ name: `bi-${mode}`, ipamDriver: 'badipam', ipam: [{ subnet: '10.79.0.0/24' }] }));
      } else {
        // a network made while the plugin behaves; then each connect asks for an address
        await ctl.createNetwork({ name: 'bi-net', ipamDriver: 'badipam', ipam: [{ subnet: '10.77.0.0/24' }] });
        const sb = host.name('bisb');
        await ctl.createSandbox({ name: sb, net: 'seedp' });
        ipam.mode = mode;
        await expectPluginFailure(t, `ipam address ${mode}`, () => ctl.connect('bi-net', sb));
        ipam.mode = 'ok';
        t.deepEqual(Object.keys(ctl.getSandbox(sb).inspect().Networks), ['seedp'], 'not connected');
        await ctl.removeSandbox(sb);
        await ctl.removeNetwork('bi-net');
      }
      ipam.release();
    }
  }
});

test.serial('a driver that dies between calls: the next call fails with ERR_PLUGIN and leaves nothing', async (t) => {
  drv.mode = 'ok';
  await ctl.createNetwork({ name: 'bd-dies', driver: 'baddrv', ipam: [{ subnet: '10.80.0.0/24' }] });
  const sb = host.name('diesb');
  await ctl.createSandbox({ name: sb, net: 'seedp' });
  await drv.die();
  await expectPluginFailure(t, 'dead driver', () => ctl.connect('bd-dies', sb));
  await ctl.removeSandbox(sb);
  // the network record stays (Docker keeps it too); it goes once the driver is back
  drv = new BadPlugin('baddrv', 'NetworkDriver');
  await drv.listen();
  await ctl.removeNetwork('bd-dies');
  t.false(ctl.listNetworks().some((n) => n.name === 'bd-dies'));
});
