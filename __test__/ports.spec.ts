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
  for (const bad of ['', 'x', '80/icmp', '70000', '0', '1.2.3:80:80', '8000-8002:80-81', '90-80', 'a:b:c:d', '[::1]:80:80', '80:']) {
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

test('host ports: 0.0.0.0 conflicts with any address, protocols are separate, ranges pick a free port', (t) => {
  const tx = memTxn();
  const r = [40000, 40003] as const;
  const a = reservePorts(tx, [{ containerPort: 80, proto: 'tcp', hostPort: 8080 }], '0.0.0.0', r, 'a');
  t.deepEqual(a, [{ proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80 }]);
  t.throws(() => reservePorts(tx, [{ containerPort: 80, proto: 'tcp', hostPort: 8080, hostIp: '10.0.0.1' }], '0.0.0.0', r, 'b'), { code: 'ERR_PORT_ALLOCATED' } as never);
  t.notThrows(() => reservePorts(tx, [{ containerPort: 80, proto: 'udp', hostPort: 8080 }], '0.0.0.0', r, 'c'));
  reservePorts(tx, [{ containerPort: 80, proto: 'tcp', hostPort: 9000, hostIp: '10.0.0.1' }], '0.0.0.0', r, 'd');
  t.throws(() => reservePorts(tx, [{ containerPort: 80, proto: 'tcp', hostPort: 9000 }], '0.0.0.0', r, 'e'), { code: 'ERR_PORT_ALLOCATED' } as never);
  t.notThrows(() => reservePorts(tx, [{ containerPort: 80, proto: 'tcp', hostPort: 9000, hostIp: '10.0.0.2' }], '0.0.0.0', r, 'f'));
  const ranged = reservePorts(tx, [{ containerPort: 80, proto: 'tcp', hostPort: 8080, hostPortEnd: 8082 }], '0.0.0.0', r, 'g');
  t.is(ranged[0]!.hostPort, 8081);
  // ephemeral ports walk the range and wrap
  const eph = [1, 2, 3, 4].map((i) => reservePorts(tx, [{ containerPort: 80, proto: 'tcp' }], '0.0.0.0', r, `h${i}`)[0]!.hostPort);
  t.deepEqual(eph, [40000, 40001, 40002, 40003]);
  t.throws(() => reservePorts(tx, [{ containerPort: 80, proto: 'tcp' }], '0.0.0.0', r, 'full'), { code: 'ERR_PORT_ALLOCATED' } as never);
  releasePorts(tx, [{ proto: 'tcp', hostIp: '0.0.0.0', hostPort: 40001, containerPort: 80 }]);
  t.is(reservePorts(tx, [{ containerPort: 80, proto: 'tcp' }], '0.0.0.0', r, 'again')[0]!.hostPort, 40001);
});
