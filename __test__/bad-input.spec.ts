// The bad input matrix: every case through the library and through the CLI gets a
// CnmError with the expected stable code and a message that says what to fix, and
// leaves store and kernel exactly as they were.
import test from 'ava';
import type { NetworkController } from '../ts/controller.js';
import { CnmError } from '../ts/errors.js';
import { native } from '../ts/native.js';
import { cliErrorCode, cnm } from './helpers/cli.js';
import { apiCall } from './helpers/daemon-http.js';
import { type IsolatedHost, isolatedHost } from './helpers/host.js';
import { storeRecords } from './helpers/records.js';

let host: IsolatedHost;
let ctl: NetworkController;
let g: string[];
test.before(async () => {
  host = await isolatedHost('bad');
  ctl = await host.open();
  g = ['--state-dir', host.stateDir, '--host-netns', host.ns];
  await ctl.createNetwork({ name: 'net1', ipam: [{ subnet: '10.190.0.0/24', ipRange: '10.190.0.128/25' }] });
  await ctl.createNetwork({ name: 'inner', internal: true, ipam: [{ subnet: '10.191.0.0/24' }] });
  await ctl.createSandbox({ name: host.name('sb1'), net: 'net1', ip: '10.190.0.10', ports: [{ containerPort: 80, hostPort: 30080 }] });
  await ctl.createSandbox({ name: host.name('nonesb'), net: 'none' });
});
test.after.always(async () => {
  await host?.cleanup();
});

type Case = [code: string, what: string, lib: (() => Promise<unknown>) | null, cli: string[] | null];
const sb1 = () => host.name('sb1');
const long = 'n'.repeat(65);

const cases = (): Case[] => [
  // network names
  ['ERR_INVALID_ARGUMENT', 'empty network name', () => ctl.createNetwork({ name: '' }), ['network', 'create', '']],
  ['ERR_INVALID_ARGUMENT', 'network name over 1 024 bytes (the store keys by name)', () => ctl.createNetwork({ name: 'n'.repeat(1025) }), ['network', 'create', 'n'.repeat(1025)]],
  ['ERR_NAME_CONFLICT', 'reserved name bridge', () => ctl.createNetwork({ name: 'bridge' }), ['network', 'create', 'bridge']],
  ['ERR_NAME_CONFLICT', 'reserved name host', () => ctl.createNetwork({ name: 'host' }), ['network', 'create', 'host']],
  ['ERR_NAME_CONFLICT', 'reserved name none', () => ctl.createNetwork({ name: 'none' }), ['network', 'create', 'none']],
  ['ERR_NAME_CONFLICT', 'existing network name', () => ctl.createNetwork({ name: 'net1' }), ['network', 'create', 'net1']],
  // CIDRs and addresses
  ['ERR_INVALID_ARGUMENT', 'subnet with host bits', () => ctl.createNetwork({ name: 'x1', ipam: [{ subnet: '10.192.0.1/24' }] }), ['network', 'create', '--subnet', '10.192.0.1/24', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'subnet without a length', () => ctl.createNetwork({ name: 'x1', ipam: [{ subnet: '10.192.0.0' }] }), ['network', 'create', '--subnet', '10.192.0.0', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'subnet /33', () => ctl.createNetwork({ name: 'x1', ipam: [{ subnet: '10.192.0.0/33' }] }), ['network', 'create', '--subnet', '10.192.0.0/33', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'subnet /32', () => ctl.createNetwork({ name: 'x1', ipam: [{ subnet: '10.192.0.0/32' }] }), ['network', 'create', '--subnet', '10.192.0.0/32', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'subnet /128', () => ctl.createNetwork({ name: 'x1', ipam: [{ subnet: 'fd00:5::/128' }] }), ['network', 'create', '--subnet', 'fd00:5::/128', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'subnet with octet 256', () => ctl.createNetwork({ name: 'x1', ipam: [{ subnet: '10.256.0.0/16' }] }), ['network', 'create', '--subnet', '10.256.0.0/16', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'subnet is not an address', () => ctl.createNetwork({ name: 'x1', ipam: [{ subnet: 'banana/24' }] }), ['network', 'create', '--subnet', 'banana/24', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'IPv4 subnet larger than /8', () => ctl.createNetwork({ name: 'x1', ipam: [{ subnet: '10.0.0.0/7' }] }), ['network', 'create', '--subnet', '10.0.0.0/7', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'gateway outside the subnet', () => ctl.createNetwork({ name: 'x1', ipam: [{ subnet: '10.192.0.0/24', gateway: '10.193.0.1' }] }), ['network', 'create', '--subnet', '10.192.0.0/24', '--gateway', '10.193.0.1', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'gateway is the network address', () => ctl.createNetwork({ name: 'x1', ipam: [{ subnet: '10.192.0.0/24', gateway: '10.192.0.0' }] }), ['network', 'create', '--subnet', '10.192.0.0/24', '--gateway', '10.192.0.0', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'gateway is the broadcast address', () => ctl.createNetwork({ name: 'x1', ipam: [{ subnet: '10.192.0.0/24', gateway: '10.192.0.255' }] }), ['network', 'create', '--subnet', '10.192.0.0/24', '--gateway', '10.192.0.255', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'gateway of the wrong family', () => ctl.createNetwork({ name: 'x1', ipam: [{ subnet: '10.192.0.0/24', gateway: 'fd00::1' }] }), ['network', 'create', '--subnet', '10.192.0.0/24', '--gateway', 'fd00::1', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'ip-range outside the subnet', () => ctl.createNetwork({ name: 'x1', ipam: [{ subnet: '10.192.0.0/24', ipRange: '10.193.0.0/25' }] }), ['network', 'create', '--subnet', '10.192.0.0/24', '--ip-range', '10.193.0.0/25', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'ip-range larger than the subnet', () => ctl.createNetwork({ name: 'x1', ipam: [{ subnet: '10.192.0.0/24', ipRange: '10.192.0.0/23' }] }), ['network', 'create', '--subnet', '10.192.0.0/24', '--ip-range', '10.192.0.0/23', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'ip-range with host bits', () => ctl.createNetwork({ name: 'x1', ipam: [{ subnet: '10.192.0.0/24', ipRange: '10.192.0.1/25' }] }), ['network', 'create', '--subnet', '10.192.0.0/24', '--ip-range', '10.192.0.1/25', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'aux address outside the subnet', () => ctl.createNetwork({ name: 'x1', ipam: [{ subnet: '10.192.0.0/24', auxAddresses: { r: '10.1.1.1' } }] }), ['network', 'create', '--subnet', '10.192.0.0/24', '--aux-address', 'r=10.1.1.1', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'aux address without a name', null, ['network', 'create', '--subnet', '10.192.0.0/24', '--aux-address', '10.192.0.5', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'gateway without a subnet', () => ctl.createNetwork({ name: 'x1', ipam: [{ gateway: '10.192.0.1' }] }), ['network', 'create', '--gateway', '10.192.0.1', 'x1']],
  ['ERR_SUBNET_OVERLAP', 'subnet overlapping another network', () => ctl.createNetwork({ name: 'x1', ipam: [{ subnet: '10.190.0.0/16' }] }), ['network', 'create', '--subnet', '10.190.0.0/16', 'x1']],
  ['ERR_SUBNET_OVERLAP', 'two overlapping subnets in one network', () => ctl.createNetwork({ name: 'x1', ipam: [{ subnet: '10.192.0.0/24' }, { subnet: '10.192.0.0/25' }] }), ['network', 'create', '--subnet', '10.192.0.0/24', '--subnet', '10.192.0.0/25', 'x1']],
  // drivers and options
  ['ERR_UNKNOWN_DRIVER', 'unknown driver', () => ctl.createNetwork({ name: 'x1', driver: 'overlayz' }), ['network', 'create', '--driver', 'overlayz', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'a second host network', () => ctl.createNetwork({ name: 'x1', driver: 'host' }), ['network', 'create', '--driver', 'host', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'a second null network', () => ctl.createNetwork({ name: 'x1', driver: 'null' }), ['network', 'create', '--driver', 'null', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'unknown bridge option', () => ctl.createNetwork({ name: 'x1', options: { 'com.docker.network.bridge.frobnicate': '1' } }), ['network', 'create', '-o', 'com.docker.network.bridge.frobnicate=1', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'non-boolean icc', () => ctl.createNetwork({ name: 'x1', options: { 'com.docker.network.bridge.enable_icc': 'perhaps' } }), ['network', 'create', '-o', 'com.docker.network.bridge.enable_icc=perhaps', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'non-boolean masquerade', () => ctl.createNetwork({ name: 'x1', options: { 'com.docker.network.bridge.enable_ip_masquerade': '2' } }), ['network', 'create', '-o', 'com.docker.network.bridge.enable_ip_masquerade=2', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'MTU that is not a number', () => ctl.createNetwork({ name: 'x1', options: { 'com.docker.network.driver.mtu': 'big' } }), ['network', 'create', '--mtu', 'big', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'MTU too small', () => ctl.createNetwork({ name: 'x1', mtu: 20 }), ['network', 'create', '--mtu', '20', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'MTU too large', () => ctl.createNetwork({ name: 'x1', mtu: 70000 }), ['network', 'create', '--mtu', '70000', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'bridge device name too long', () => ctl.createNetwork({ name: 'x1', options: { 'com.docker.network.bridge.name': 'sixteen-bytes-xx' } }), ['network', 'create', '-o', 'com.docker.network.bridge.name=sixteen-bytes-xx', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'bridge device name with a slash', () => ctl.createNetwork({ name: 'x1', options: { 'com.docker.network.bridge.name': 'br/0' } }), ['network', 'create', '-o', 'com.docker.network.bridge.name=br/0', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'option without =', null, ['network', 'create', '-o', 'novalue', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'unknown flag', null, ['network', 'create', '--subnett', '10.0.0.0/24', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'host binding that is not an address', () => ctl.createNetwork({ name: 'x1', options: { 'com.docker.network.bridge.host_binding_ipv4': 'any' } }), ['network', 'create', '-o', 'com.docker.network.bridge.host_binding_ipv4=any', 'x1']],
  // missing things, in-use things
  ['ERR_NETWORK_NOT_FOUND', 'rm of a missing network', () => ctl.removeNetwork('nope'), ['network', 'rm', 'nope']],
  ['ERR_NETWORK_IN_USE', 'rm of a network in use', () => ctl.removeNetwork('net1'), ['network', 'rm', 'net1']],
  ['ERR_PREDEFINED_NETWORK', 'rm of the default bridge', () => ctl.removeNetwork('bridge'), ['network', 'rm', 'bridge']],
  ['ERR_SANDBOX_NOT_FOUND', 'rm of a missing sandbox', () => ctl.removeSandbox('nope'), ['sandbox', 'rm', 'nope']],
  ['ERR_NETWORK_NOT_FOUND', 'sandbox on a missing network', () => ctl.createSandbox({ name: host.name('z'), net: 'nope' }), ['sandbox', 'create', '--net', 'nope', host.name('z')]],
  ['ERR_SANDBOX_NOT_FOUND', 'container mode with a missing sandbox', () => ctl.createSandbox({ name: host.name('z'), net: 'container:nope' }), ['sandbox', 'create', '--net', 'container:nope', host.name('z')]],
  ['ERR_NAME_CONFLICT', 'sandbox name in use', () => ctl.createSandbox({ name: sb1(), net: 'net1' }), ['sandbox', 'create', '--net', 'net1', sb1()]],
  ['ERR_INVALID_ARGUMENT', 'sandbox name ../x', () => ctl.createSandbox({ name: '../x' }), ['sandbox', 'create', '../x']],
  ['ERR_INVALID_ARGUMENT', 'sandbox name too long', () => ctl.createSandbox({ name: long }), ['sandbox', 'create', long]],
  ['ERR_NETWORK_NOT_FOUND', 'connect to a missing network', () => ctl.connect('nope', sb1()), ['network', 'connect', 'nope', sb1()]],
  ['ERR_SANDBOX_NOT_FOUND', 'connect a missing sandbox', () => ctl.connect('net1', 'nope'), ['network', 'connect', 'net1', 'nope']],
  ['ERR_ALREADY_CONNECTED', 'double connect', () => ctl.connect('net1', sb1()), ['network', 'connect', 'net1', sb1()]],
  ['ERR_NOT_CONNECTED', 'disconnect of what is not connected', () => ctl.disconnect('inner', sb1()), ['network', 'disconnect', 'inner', sb1()]],
  ['ERR_INVALID_ARGUMENT', 'connect a none-mode sandbox', () => ctl.connect('net1', host.name('nonesb')), ['network', 'connect', 'net1', host.name('nonesb')]],
  ['ERR_INVALID_ARGUMENT', 'connect to the host network', () => ctl.connect('host', sb1()), ['network', 'connect', 'host', sb1()]],
  // static addresses
  ['ERR_ADDRESS_IN_USE', 'static IP taken', () => ctl.createSandbox({ name: host.name('z'), net: 'net1', ip: '10.190.0.10' }), ['sandbox', 'create', '--net', 'net1', '--ip', '10.190.0.10', host.name('z')]],
  ['ERR_ADDRESS_IN_USE', 'static IP is the gateway', () => ctl.createSandbox({ name: host.name('z'), net: 'net1', ip: '10.190.0.1' }), ['sandbox', 'create', '--net', 'net1', '--ip', '10.190.0.1', host.name('z')]],
  ['ERR_INVALID_ARGUMENT', 'static IP outside the subnet', () => ctl.createSandbox({ name: host.name('z'), net: 'net1', ip: '10.199.0.10' }), ['sandbox', 'create', '--net', 'net1', '--ip', '10.199.0.10', host.name('z')]],
  ['ERR_INVALID_ARGUMENT', 'static IP is the broadcast address', () => ctl.createSandbox({ name: host.name('z'), net: 'net1', ip: '10.190.0.255' }), ['sandbox', 'create', '--net', 'net1', '--ip', '10.190.0.255', host.name('z')]],
  ['ERR_INVALID_ARGUMENT', 'static IP of the wrong family', () => ctl.createSandbox({ name: host.name('z'), net: 'net1', ip: 'fd00::9' }), ['sandbox', 'create', '--net', 'net1', '--ip', 'fd00::9', host.name('z')]],
  ['ERR_INVALID_ARGUMENT', 'static IP that is not an address', () => ctl.createSandbox({ name: host.name('z'), net: 'net1', ip: '10.190.0' }), ['sandbox', 'create', '--net', 'net1', '--ip', '10.190.0', host.name('z')]],
  ['ERR_INVALID_ARGUMENT', 'static IP on the default bridge', () => ctl.createSandbox({ name: host.name('z'), net: 'bridge', ip: '172.17.0.50' }), ['sandbox', 'create', '--net', 'bridge', '--ip', '172.17.0.50', host.name('z')]],
  ['ERR_INVALID_ARGUMENT', '--ip6 on an IPv4-only network', () => ctl.createSandbox({ name: host.name('z'), net: 'net1', ip6: 'fd00::9' }), ['sandbox', 'create', '--net', 'net1', '--ip6', 'fd00::9', host.name('z')]],
  ['ERR_INVALID_ARGUMENT', 'alias on the default bridge', () => ctl.createSandbox({ name: host.name('z'), net: 'bridge', aliases: ['db'] }), ['sandbox', 'create', '--net', 'bridge', '--alias', 'db', host.name('z')]],
  // ports
  ['ERR_PORT_ALLOCATED', 'host port already published', () => ctl.createSandbox({ name: host.name('z'), net: 'net1', ports: [{ containerPort: 80, hostPort: 30080 }] }), ['sandbox', 'create', '--net', 'net1', '-p', '30080:80', host.name('z')]],
  ['ERR_INVALID_ARGUMENT', 'port above 65535', () => ctl.createSandbox({ name: host.name('z'), net: 'net1', ports: [{ containerPort: 70000 }] }), ['sandbox', 'create', '--net', 'net1', '-p', '70000', host.name('z')]],
  ['ERR_INVALID_ARGUMENT', 'container port 0', () => ctl.createSandbox({ name: host.name('z'), net: 'net1', ports: [{ containerPort: 0 }] }), ['sandbox', 'create', '--net', 'net1', '-p', '8080:0', host.name('z')]],
  ['ERR_INVALID_ARGUMENT', 'unknown protocol', () => ctl.createSandbox({ name: host.name('z'), net: 'net1', ports: [{ containerPort: 80, proto: 'icmp' as never }] }), ['sandbox', 'create', '--net', 'net1', '-p', '80/icmp', host.name('z')]],
  ['ERR_INVALID_ARGUMENT', 'port range backwards', null, ['sandbox', 'create', '--net', 'net1', '-p', '90-80', host.name('z')]],
  ['ERR_INVALID_ARGUMENT', 'port ranges of different sizes', null, ['sandbox', 'create', '--net', 'net1', '-p', '8000-8002:80-81', host.name('z')]],
  ['ERR_INVALID_ARGUMENT', 'host IP that is not an address', () => ctl.createSandbox({ name: host.name('z'), net: 'net1', ports: [{ containerPort: 80, hostIp: 'localhost' }] }), ['sandbox', 'create', '--net', 'net1', '-p', 'localhost:8080:80', host.name('z')]],
  ['ERR_INVALID_ARGUMENT', 'ports on an internal network', () => ctl.createSandbox({ name: host.name('z'), net: 'inner', ports: [{ containerPort: 80 }] }), ['sandbox', 'create', '--net', 'inner', '-p', '80', host.name('z')]],
  ['ERR_INVALID_ARGUMENT', 'port that is not a number', null, ['sandbox', 'create', '--net', 'net1', '-p', 'http', host.name('z')]],
  // gateway modes, trusted interfaces, IPv6-only networks
  ['ERR_INVALID_ARGUMENT', 'isolated gateway mode without --internal', () => ctl.createNetwork({ name: 'x1', options: { 'com.docker.network.bridge.gateway_mode_ipv4': 'isolated' } }), ['network', 'create', '-o', 'com.docker.network.bridge.gateway_mode_ipv4=isolated', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'unknown IPv6 gateway mode', () => ctl.createNetwork({ name: 'x1', enableIPv6: true, options: { 'com.docker.network.bridge.gateway_mode_ipv6': 'nat6' } }), ['network', 'create', '--ipv6', '-o', 'com.docker.network.bridge.gateway_mode_ipv6=nat6', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'unknown IPv4 gateway mode', () => ctl.createNetwork({ name: 'x1', options: { 'com.docker.network.bridge.gateway_mode_ipv4': 'Routed' } }), ['network', 'create', '-o', 'com.docker.network.bridge.gateway_mode_ipv4=Routed', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'trusted interface name too long', () => ctl.createNetwork({ name: 'x1', options: { 'com.docker.network.bridge.trusted_host_interfaces': 'eth0:averyveryverylongname' } }), ['network', 'create', '-o', 'com.docker.network.bridge.trusted_host_interfaces=eth0:averyveryverylongname', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'inhibit_ipv4 not a boolean', () => ctl.createNetwork({ name: 'x1', options: { 'com.docker.network.bridge.inhibit_ipv4': 'maybe' } }), ['network', 'create', '-o', 'com.docker.network.bridge.inhibit_ipv4=maybe', 'x1']],
  ['ERR_INVALID_ARGUMENT', '--ipv4=false without IPv6', () => ctl.createNetwork({ name: 'x1', enableIPv4: false }), ['network', 'create', '--ipv4=false', 'x1']],
  ['ERR_INVALID_ARGUMENT', '--ipv4=false with an IPv4 subnet', () => ctl.createNetwork({ name: 'x1', enableIPv4: false, enableIPv6: true, ipam: [{ subnet: '10.198.0.0/24' }] }), ['network', 'create', '--ipv4=false', '--ipv6', '--subnet', '10.198.0.0/24', 'x1']],
  ['ERR_INVALID_ARGUMENT', '--ipv4 with a bad value', null, ['network', 'create', '--ipv4=maybe', '--ipv6', 'x1']],
  ['ERR_INVALID_ARGUMENT', 'IPv6 host address for an IPv4-only endpoint', () => ctl.createSandbox({ name: host.name('z'), net: 'net1', ports: [{ containerPort: 80, hostIp: '2001:db8::1' }] }), ['sandbox', 'create', '--net', 'net1', '-p', '[2001:db8::1]:8080:80', host.name('z')]],
  ['ERR_INVALID_ARGUMENT', 'sctp on [::1] (the userland proxy serves tcp and udp)', () => ctl.createSandbox({ name: host.name('z'), net: 'net1', ports: [{ containerPort: 80, hostIp: '::1', proto: 'sctp' }] }), ['sandbox', 'create', '--net', 'net1', '-p', '[::1]:8080:80/sctp', host.name('z')]],
  // wrong types through the library
  ['ERR_INVALID_ARGUMENT', 'enableIPv4 not a boolean', () => ctl.createNetwork({ name: 'x1', enableIPv4: 'no' as never }), null],
  ['ERR_INVALID_ARGUMENT', 'network options not a string', () => ctl.createNetwork({ name: 'x1', options: { a: 1 as never } }), null],
  ['ERR_INVALID_ARGUMENT', 'ipam not a list', () => ctl.createNetwork({ name: 'x1', ipam: {} as never }), null],
  ['ERR_INVALID_ARGUMENT', 'enableIPv6 not a boolean', () => ctl.createNetwork({ name: 'x1', enableIPv6: 'yes' as never }), null],
  ['ERR_INVALID_ARGUMENT', 'aliases not strings', () => ctl.connect('inner', sb1(), { aliases: [5 as never] }), null],
  ['ERR_INVALID_ARGUMENT', 'network name not a string', () => ctl.createNetwork({ name: 42 as never }), null],
];

test.serial('every bad input gets its coded error, through the library and the CLI, and changes nothing', async (t) => {
  const list = cases();
  const storeBefore = JSON.stringify(storeRecords(ctl));
  const linksBefore = JSON.stringify((await native.listLinks(host.ns)).map((l) => l.name).sort());
  const fwBefore = JSON.stringify(await native.firewallState('nftables', host.ns));
  // only this file's namespaces: other test files run alongside
  const mine = async () => JSON.stringify((await native.netnsList()).filter((n) => n.startsWith(host.name(''))).sort());
  const nsBefore = await mine();
  let tried = 0;
  for (const [code, what, lib, cli] of list) {
    if (lib) {
      const e = await t.throwsAsync(lib(), undefined, what);
      t.true(e instanceof CnmError, `${what}: ${e?.constructor.name} ${e?.message}`);
      t.is((e as CnmError).code, code, `${what}: ${e?.message}`);
      t.true(e!.message.length >= 15, `${what}: the message says something: ${e!.message}`);
      tried++;
    }
    if (cli) {
      const r = cnm([...g, ...cli], { CNM_LOG: 'debug' });
      t.not(r.code, 0, `${what} (cli)`);
      t.regex(r.stderr, /^Error: \S/, `${what} (cli)`);
      t.is(cliErrorCode(r), code, `${what} (cli): ${r.stderr.split('\n')[0]}`);
      tried++;
    }
  }
  t.log(`${list.length} cases, ${tried} attempts`);
  t.is(JSON.stringify(storeRecords(ctl)), storeBefore, 'store unchanged');
  t.is(JSON.stringify((await native.listLinks(host.ns)).map((l) => l.name).sort()), linksBefore, 'links unchanged');
  t.is(JSON.stringify(await native.firewallState('nftables', host.ns)), fwBefore, 'firewall unchanged');
  t.is(await mine(), nsBefore, 'namespaces unchanged');
});

test.serial('bad requests to the daemon get Docker statuses and change nothing', async (t) => {
  const { startDaemon } = await import('../ts/daemon/server.js');
  const { join } = await import('node:path');
  const d = await startDaemon({ socket: join(host.tmp('bad'), 'cnm.sock'), controller: { hostNetns: host.ns, stateDir: host.stateDir } });
  const call = (method: string, path: string, body?: unknown) => apiCall(d.socket, method, path, body);
  try {
    const before = JSON.stringify(storeRecords(d.controller));
    const linksBefore = JSON.stringify((await native.listLinks(host.ns)).map((l) => l.name).sort());
    const sb = sb1();
    const cases: Array<[number, string, string, unknown?]> = [
      [400, 'POST', '/networks/create', {}],
      [400, 'POST', '/networks/create', { Name: '' }],
      [400, 'POST', '/networks/create', { Name: 5 }],
      [400, 'POST', '/networks/create', '{broken'],
      [400, 'POST', '/networks/create', '[1,2]'],
      [400, 'POST', '/networks/create', { Name: 'x', IPAM: { Config: [{ Subnet: '10.1.0.1/24' }] } }],
      [400, 'POST', '/networks/create', { Name: 'x', IPAM: { Config: [{ Subnet: 'nope' }] } }],
      [400, 'POST', '/networks/create', { Name: 'x', IPAM: { Config: { Subnet: '10.1.0.0/24' } } }],
      [400, 'POST', '/networks/create', { Name: 'x', IPAM: { Config: [{ Subnet: '10.197.0.0/24', Gateway: '10.1.0.1' }] } }],
      [400, 'POST', '/networks/create', { Name: 'x', Options: { 'com.docker.network.bridge.enable_icc': 'maybe' } }],
      [400, 'POST', '/networks/create', { Name: 'x', Options: { a: 1 } }],
      [400, 'POST', '/networks/create', { Name: 'x', Labels: 'a=b' }],
      [400, 'POST', '/networks/create', { Name: 'x', Internal: 'yes' }],
      [400, 'POST', '/networks/create', { Name: 'x', Ingress: true }],
      [400, 'POST', '/networks/create', { Name: 'x', Scope: 'swarm' }],
      [404, 'POST', '/networks/create', { Name: 'x', Driver: 'nosuch' }],
      [404, 'POST', '/networks/create', { Name: 'x', IPAM: { Driver: 'nosuch' } }],
      [409, 'POST', '/networks/create', { Name: 'net1' }],
      [403, 'POST', '/networks/create', { Name: 'x', IPAM: { Config: [{ Subnet: '10.190.0.0/16' }] } }],
      [404, 'GET', '/networks/nosuch'],
      [404, 'DELETE', '/networks/nosuch'],
      [403, 'DELETE', '/networks/net1'],
      [403, 'DELETE', '/networks/host'],
      [400, 'GET', '/networks?filters=%7Bbad'],
      [400, 'GET', `/networks?filters=${encodeURIComponent('{"color":{"red":true}}')}`],
      [400, 'GET', `/networks?filters=${encodeURIComponent('{"type":{"weird":true}}')}`],
      [400, 'POST', '/networks/net1/connect', {}],
      [404, 'POST', '/networks/net1/connect', { Container: 'nosuch' }],
      [404, 'POST', '/networks/nosuch/connect', { Container: sb }],
      [403, 'POST', '/networks/net1/connect', { Container: sb }],
      [400, 'POST', '/networks/inner/connect', { Container: sb, EndpointConfig: { IPAMConfig: { IPv4Address: 'x' } } }],
      [400, 'POST', '/networks/inner/connect', { Container: sb, EndpointConfig: { Aliases: 'db' } }],
      [404, 'POST', '/networks/inner/disconnect', { Container: sb }],
      [400, 'POST', '/networks/inner/disconnect', {}],
      [400, 'POST', '/v1.10/networks/create', { Name: 'x' }],
      [404, 'GET', '/containers/nosuch/json'],
      [404, 'GET', '/images/json'],
      [400, 'PUT', '/networks/net1'],
    ];
    for (const [status, method, path, body] of cases) {
      const r = await call(method, path, body);
      t.is(r.status, status, `${method} ${path} ${JSON.stringify(body)}: ${r.message}`);
      t.true(r.message.length > 5, `${method} ${path}: a message says what is wrong`);
    }
    t.is(JSON.stringify(storeRecords(d.controller)), before, 'store unchanged');
    t.is(JSON.stringify((await native.listLinks(host.ns)).map((l) => l.name).sort()), linksBefore, 'links unchanged');
  } finally {
    await d.close();
  }
});
