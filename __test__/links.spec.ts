// Legacy links on the default bridge with --icc=false, on both firewall
// backends: the linked pair talks on the linked sandbox's exposed and
// published ports and on nothing else, nobody else talks to it; hosts entries,
// inspect's Links and Docker's environment variables; links go with either end.
import { readFileSync } from 'node:fs';
import { backendsHere } from './helpers/tools.js';
import test from 'ava';
import type { NetworkController } from '../ts/controller.js';
import { CnmError } from '../ts/errors.js';
import { native } from '../ts/native.js';
import { getent } from './helpers/dns.js';
import { type IsolatedHost, isolatedHost, pings } from './helpers/host.js';
import { startEchoServer, tcpTry } from './helpers/tcp.js';

for (const backend of backendsHere()) {
  const run = test.serial;
  let host: IsolatedHost;
  let ctl: NetworkController;

  test.before(async () => {
    host = await isolatedHost(`lnk-${backend.slice(0, 3)}`);
    ctl = await host.open({ icc: false, firewall: backend });
  });
  test.after.always(async () => {
    await host?.cleanup();
  });

  run(`${backend}: a link opens exactly the linked ports between exactly the linked pair`, async (t) => {
    const db = await ctl.createSandbox({ name: host.name('db'), expose: ['5000'], ports: [{ containerPort: 5002 }] });
    const app = await ctl.createSandbox({ name: host.name('app'), links: [`${db.name}:database`] });
    const other = await ctl.createSandbox({ name: host.name('other') });
    const dbIp = db.inspect().Networks.bridge!.IPAddress;
    const servers = await Promise.all([5000, 5001, 5002].map((p) => startEchoServer(db.netns, '0.0.0.0', p)));
    try {
      t.is(tcpTry(app.netns, dbIp, 5000, 'linked'), 'linked', 'the exposed port, linked');
      t.is(tcpTry(app.netns, dbIp, 5002, 'published'), 'published', 'a published container port, linked');
      t.is(tcpTry(app.netns, dbIp, 5001, 'x', 700), null, 'a port neither exposed nor published');
      t.is(tcpTry(other.netns, dbIp, 5000, 'x', 700), null, 'a sandbox not linked');
      t.false(pings(app.netns, dbIp), 'no ICMP with icc off');
    } finally {
      for (const s of servers) s.kill();
    }
    // hosts entry, inspect, environment
    t.deepEqual(getent(app.netns, 'database'), [dbIp]);
    t.regex(readFileSync(`/etc/netns/${app.netns}/hosts`, 'utf8'), new RegExp(`^${dbIp.replaceAll('.', '\\.')}\\tdatabase ${db.name}$`, 'm'));
    const inspect = ctl.getSandbox(app.name).inspect();
    t.deepEqual(inspect.Links, [`/${db.name}:/${app.name}/database`]);
    t.deepEqual(ctl.getSandbox(db.name).inspect().ExposedPorts, { '5000/tcp': {} });
    const env = ctl.getSandbox(app.name).linkEnvironment();
    t.is(env.DATABASE_NAME, `/${app.name}/database`);
    t.is(env.DATABASE_PORT, `tcp://${dbIp}:5000`);
    t.is(env.DATABASE_PORT_5000_TCP_ADDR, dbIp);
    t.is(env.DATABASE_PORT_5002_TCP, `tcp://${dbIp}:5002`);
    t.is(env.DATABASE_PORT_5000_TCP_PROTO, 'tcp');
    const fw = await ctl.firewall.state();
    t.is(fw.links.length, 2, 'one entry per linked port');
    // someone removed them: reconcile puts them back
    await native.applyFirewall({ backend, netns: host.ns, removeLinks: fw.links });
    t.deepEqual((await ctl.firewall.state()).links, []);
    const report = await ctl.reconcile();
    t.true(JSON.stringify(report).includes('restore link'), JSON.stringify(report));
    t.is((await ctl.firewall.state()).links.length, 2);
    // the linked end goes: the link goes with it, everywhere
    await ctl.removeSandbox(db.name);
    t.is(ctl.getSandbox(app.name).inspect().Links, null);
    t.false(readFileSync(`/etc/netns/${app.netns}/hosts`, 'utf8').includes('database'));
    t.deepEqual((await ctl.firewall.state()).links, []);
    await ctl.removeSandbox(app.name);
    await ctl.removeSandbox(other.name);
  });

  run(`${backend}: the linking end goes, the link goes; network connect --link; bad links change nothing`, async (t) => {
    const db = await ctl.createSandbox({ name: host.name('db2'), expose: ['6000/udp', '6001-6002'] });
    const app = await ctl.createSandbox({ name: host.name('app2'), links: [db.name] });
    t.is((await ctl.firewall.state()).links.length, 3);
    await ctl.removeSandbox(app.name);
    t.deepEqual((await ctl.firewall.state()).links, []);
    t.deepEqual(ctl.store.range(`sblink/${db.id}/`), [], 'the index entry went too');
    const before = ctl.listSandboxes().length;
    const bad = async (req: Parameters<NetworkController['createSandbox']>[0], code: string) => {
      const e = await t.throwsAsync(ctl.createSandbox(req), { instanceOf: CnmError });
      t.is(e?.code, code, JSON.stringify(req));
      t.false(await native.netnsExists(req.name));
    };
    await bad({ name: host.name('bad'), links: ['nosuch'] }, 'ERR_SANDBOX_NOT_FOUND');
    await bad({ name: host.name('bad'), links: [`${db.name}:bad alias`] }, 'ERR_INVALID_ARGUMENT');
    await bad({ name: host.name('bad'), links: [`${db.name}:a:b`] }, 'ERR_INVALID_ARGUMENT');
    await bad({ name: host.name('bad'), net: 'none', links: [db.name] }, 'ERR_INVALID_ARGUMENT');
    await bad({ name: host.name('bad'), expose: ['70000'] }, 'ERR_INVALID_ARGUMENT');
    await ctl.createNetwork({ name: `user-${backend}` });
    await bad({ name: host.name('bad'), net: `user-${backend}`, links: [db.name] }, 'ERR_INVALID_ARGUMENT');
    t.is(ctl.listSandboxes().length, before);
    // on a user-defined network (icc on): a hosts entry, no firewall entry needed
    await ctl.connect(`user-${backend}`, db.name);
    const viaConnect = await ctl.createSandbox({ name: host.name('vc') });
    await ctl.connect(`user-${backend}`, viaConnect.name, { links: [`${db.name}:store`] });
    const dbUser = ctl.getSandbox(db.name).inspect().Networks[`user-${backend}`]!.IPAddress;
    t.deepEqual(getent(viaConnect.netns, 'store'), [dbUser]);
    t.deepEqual(ctl.getSandbox(viaConnect.name).inspect().Links, [`/${db.name}:/${viaConnect.name}/store`]);
    await ctl.disconnect(`user-${backend}`, viaConnect.name);
    t.is(ctl.getSandbox(viaConnect.name).inspect().Links, null, 'a link goes when its network is left');
    for (const s of [viaConnect, db]) await ctl.removeSandbox(s.name);
  });
}
