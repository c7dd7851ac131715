// Kernel-free tests of -p parsing and host port reservation.
import test from 'ava';
import { parsePublish } from '../ts/ports.js';
import { releasePorts, reservePorts } from '../ts/port-allocator.js';
import type { StoreTxn } from '../ts/store/store.js';

test('-p specs parse like docker', (t) => {
  t.deepEqual(parsePublish('80'), [{ containerPort: 80, proto: 'tcp', hostIp: undefined }]);
  t.deepEqual(parsePublish('8080:80'), [{ containerPort: 80, proto: 'tcp', hostIp: undefined, hostPort: 8080 }]);
  t.deepEqual(parsePublish('127.0.0.1:8080:80/udp'), [{ containerPort: 80, proto: 'udp', hostIp: '127.0.0.1', hostPort: 8080 }]);
  t.deepEqual(parsePublish('127.0.0.1::80'), [{ containerPort: 80, proto: 'tcp', hostIp: '127.0.0.1' }]);
  t.deepEqual(
    parsePublish('8000-8001:80-81/sctp').map((b) => [b.hostPort, b.containerPort, b.proto]),
    [
      [8000, 80, 'sctp'],
      [8001, 81, 'sctp'],
    ],
  );
  t.deepEqual(parsePublish('9000-9010:80'), [{ containerPort: 80, proto: 'tcp', hostIp: undefined, hostPort: 9000, hostPortEnd: 9010 }]);
  t.deepEqual(parsePublish('[::1]:8080:80'), [{ containerPort: 80, proto: 'tcp', hostIp: '::1', hostPort: 8080 }]);
  t.deepEqual(parsePublish('[fd00::1]::53/udp'), [{ containerPort: 53, proto: 'udp', hostIp: 'fd00::1' }]);
  t.deepEqual(parsePublish('[::]:80:80'), [{ containerPort: 80, proto: 'tcp', hostIp: '::', hostPort: 80 }]);
  const bads = ['', 'x', '80/icmp', '70000', '0', '1.2.3:80:80', '8000-8002:80-81', '90-80', 'a:b:c:d', '80:'];
  bads.push('::1:80:80', '[::1]80:80', '[10.0.0.1]:80:80', '[::1]:80', '[::1]:1:2:3', '[zz]:80:80');
  for (const bad of bads) {
    const e = t.throws(() => parsePublish(bad), undefined, bad);
    t.is((e as { code?: string }).code, 'ERR_INVALID_ARGUMENT', bad);
  }
});

function memTxn(): StoreTxn {
  const m = new Map<string, unknown>();
  return {
    get: <T>(k: string) => m.get(k) as T | undefined,
    put: (k, v) => void m.set(k, v),
    del: (k) => void m.delete(k),
    onAbort: () => undefined,
    range: <T>(p: string) => [...m].filter(([k]) => k.startsWith(p)).sort() as Array<[string, T]>,
  };
}

const V4 = { v4: 'nat', v6: 'none' } as const;
const DUAL = { v4: 'nat', v6: 'nat' } as const;

test('host ports: 0.0.0.0 conflicts with any address, protocols are separate, ranges pick a free port', (t) => {
  const tx = memTxn();
  const r = [40000, 40003] as const;
  const a = reservePorts(tx, [{ containerPort: 80, proto: 'tcp', hostPort: 8080 }], '0.0.0.0', r, 'a', V4);
  t.deepEqual(a, [{ proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80 }]);
  t.throws(() => reservePorts(tx, [{ containerPort: 80, proto: 'tcp', hostPort: 8080, hostIp: '10.0.0.1' }], '0.0.0.0', r, 'b', V4), { code: 'ERR_PORT_ALLOCATED' } as never);
  t.notThrows(() => reservePorts(tx, [{ containerPort: 80, proto: 'udp', hostPort: 8080 }], '0.0.0.0', r, 'c', V4));
  reservePorts(tx, [{ containerPort: 80, proto: 'tcp', hostPort: 9000, hostIp: '10.0.0.1' }], '0.0.0.0', r, 'd', V4);
  t.throws(() => reservePorts(tx, [{ containerPort: 80, proto: 'tcp', hostPort: 9000 }], '0.0.0.0', r, 'e', V4), { code: 'ERR_PORT_ALLOCATED' } as never);
  t.notThrows(() => reservePorts(tx, [{ containerPort: 80, proto: 'tcp', hostPort: 9000, hostIp: '10.0.0.2' }], '0.0.0.0', r, 'f', V4));
  const ranged = reservePorts(tx, [{ containerPort: 80, proto: 'tcp', hostPort: 8080, hostPortEnd: 8082 }], '0.0.0.0', r, 'g', V4);
  t.is(ranged[0]!.hostPort, 8081);
  // ephemeral ports walk the range and wrap
  const eph = [1, 2, 3, 4].map((i) => reservePorts(tx, [{ containerPort: 80, proto: 'tcp' }], '0.0.0.0', r, `h${i}`, V4)[0]!.hostPort);
  t.deepEqual(eph, [40000, 40001, 40002, 40003]);
  t.throws(() => reservePorts(tx, [{ containerPort: 80, proto: 'tcp' }], '0.0.0.0', r, 'full', V4), { code: 'ERR_PORT_ALLOCATED' } as never);
  releasePorts(tx, [{ proto: 'tcp', hostIp: '0.0.0.0', hostPort: 40001, containerPort: 80 }]);
  t.is(reservePorts(tx, [{ containerPort: 80, proto: 'tcp' }], '0.0.0.0', r, 'again', V4)[0]!.hostPort, 40001);
});

test('host ports per family: the same port on IPv4 and IPv6, each family apart, IPv6 host addresses', (t) => {
  const tx = memTxn();
  const r = [40000, 40003] as const;
  // no host IP on a dual-stack endpoint: both families, one port
  const a = reservePorts(tx, [{ containerPort: 80, proto: 'tcp', hostPort: 8080 }], '0.0.0.0', r, 'a', DUAL);
  t.deepEqual(a, [
    { proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80 },
    { proto: 'tcp', hostIp: '::', hostPort: 8080, containerPort: 80 },
  ]);
  t.throws(() => reservePorts(tx, [{ containerPort: 80, proto: 'tcp', hostPort: 8080, hostIp: '::1' }], '0.0.0.0', r, 'b', DUAL), { code: 'ERR_PORT_ALLOCATED' } as never);
  // an ephemeral port is free in both families, and the same in both
  reservePorts(tx, [{ containerPort: 80, proto: 'tcp', hostPort: 40000, hostIp: '::1' }], '0.0.0.0', r, 'c', DUAL);
  const e = reservePorts(tx, [{ containerPort: 81, proto: 'tcp' }], '0.0.0.0', r, 'd', DUAL);
  t.deepEqual(
    e.map((m) => [m.hostIp, m.hostPort]),
    [
      ['0.0.0.0', 40001],
      ['::', 40001],
    ],
    'port 40000 is taken on ::1, so not free on :: either',
  );
  // IPv4 only on 0.0.0.0 given explicitly; an IPv4 mapping leaves the IPv6 port free
  const v4 = reservePorts(tx, [{ containerPort: 80, proto: 'tcp', hostPort: 9000, hostIp: '0.0.0.0' }], '0.0.0.0', r, 'e', DUAL);
  t.deepEqual(v4.map((m) => m.hostIp), ['0.0.0.0']);
  const v6 = reservePorts(tx, [{ containerPort: 80, proto: 'tcp', hostPort: 9000, hostIp: '::' }], '0.0.0.0', r, 'f', DUAL);
  t.deepEqual(v6.map((m) => m.hostIp), ['::']);
  t.throws(() => reservePorts(tx, [{ containerPort: 80, proto: 'tcp', hostPort: 9000 }], '0.0.0.0', r, 'g', DUAL), { code: 'ERR_PORT_ALLOCATED' } as never);
  // the host address is canonical, and must be of a family the endpoint has
  t.deepEqual(reservePorts(tx, [{ containerPort: 80, proto: 'tcp', hostPort: 9100, hostIp: 'fd00:0::1' }], '0.0.0.0', r, 'h', DUAL)[0]!.hostIp, 'fd00::1');
  const noV6 = t.throws(() => reservePorts(tx, [{ containerPort: 80, proto: 'tcp', hostPort: 9200, hostIp: '2001:db8::1' }], '0.0.0.0', r, 'i', V4));
  t.is((noV6 as { code?: string }).code, 'ERR_INVALID_ARGUMENT');
  // but [::1], served by a userland proxy, reaches an IPv4-only endpoint; not sctp
  t.deepEqual(reservePorts(tx, [{ containerPort: 80, proto: 'tcp', hostPort: 9200, hostIp: '::1' }], '0.0.0.0', r, 'i2', V4), [{ proto: 'tcp', hostIp: '::1', hostPort: 9200, containerPort: 80 }]);
  const sctp = t.throws(() => reservePorts(tx, [{ containerPort: 80, proto: 'sctp', hostPort: 9201, hostIp: '::1' }], '0.0.0.0', r, 'i3', DUAL));
  t.is((sctp as { code?: string }).code, 'ERR_INVALID_ARGUMENT');
  // IPv6-only: :: alone, even with a specific IPv4 default
  const only6 = { v4: 'none', v6: 'nat' } as const;
  t.deepEqual(reservePorts(tx, [{ containerPort: 80, proto: 'tcp', hostPort: 9300 }], '127.0.0.1', r, 'j', only6).map((m) => m.hostIp), ['::']);
  // routed: no host port, nothing reserved
  const routed = reservePorts(tx, [{ containerPort: 80, proto: 'tcp', hostPort: 8500 }], '0.0.0.0', r, 'k', { v4: 'routed', v6: 'nat' });
  t.deepEqual(routed, [
    { proto: 'tcp', hostIp: '0.0.0.0', hostPort: 0, containerPort: 80, routed: true },
    { proto: 'tcp', hostIp: '::', hostPort: 8500, containerPort: 80 },
  ]);
  t.notThrows(() => reservePorts(tx, [{ containerPort: 80, proto: 'tcp', hostPort: 8500 }], '0.0.0.0', r, 'l', V4), 'IPv4 port 8500 was not reserved');
  releasePorts(tx, routed);
  t.notThrows(() => reservePorts(tx, [{ containerPort: 80, proto: 'tcp', hostPort: 8500, hostIp: '::' }], '0.0.0.0', r, 'm', DUAL));
});
