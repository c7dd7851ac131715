// Kernel-free tests of the bitmap, pools and automatic subnet choice.
import test from 'ava';
import { Bitmap } from '../ts/ipam/bitmap.js';
import { chooseSubnet, DEFAULT_POOLS } from '../ts/ipam/default-pools.js';
import { Pool } from '../ts/ipam/pool.js';
import { formatIp, parseCidr, parseIp, parseSubnet } from '../ts/net/ip.js';

test('bitmap finds clear bits across words and respects bounds', (t) => {
  const b = new Bitmap(100);
  for (let i = 0; i < 70; i++) b.set(i);
  t.is(b.nextClear(0, 100), 70);
  t.is(b.nextClear(0, 70), -1);
  b.clear(33);
  t.is(b.nextClear(0, 100), 33);
  t.is(b.nextClear(34, 100), 70);
  for (let i = 70; i < 100; i++) b.set(i);
  b.set(33);
  t.is(b.nextClear(0, 100), -1);
  t.is(b.count, 100);
});

test('bitmap on a /8 skips full regions through the summary', (t) => {
  const size = 1 << 24;
  const b = new Bitmap(size);
  for (let i = 0; i < size - 5; i++) b.set(i);
  t.is(b.nextClear(0, size), size - 5);
  b.clear(12345);
  t.is(b.nextClear(0, size), 12345);
  t.is(b.nextClear(12346, size), size - 5);
});

test('pool: gateway is the first usable address; network, broadcast and gateway are never handed out', (t) => {
  const p = new Pool({ subnet: '10.9.0.0/29' });
  t.is(p.config.gateway, '10.9.0.1');
  const got: string[] = [];
  for (;;) {
    const off = p.nextFree();
    if (off < 0) break;
    p.take(off, true);
    got.push(formatIp(p.addressAt(off)));
  }
  t.deepEqual(got, ['10.9.0.2', '10.9.0.3', '10.9.0.4', '10.9.0.5', '10.9.0.6']);
});

test('pool: serial allocation does not reuse a released address before wrapping', (t) => {
  const p = new Pool({ subnet: '10.9.0.0/29' });
  const a = p.nextFree();
  p.take(a, true);
  const b = p.nextFree();
  p.take(b, true);
  p.release(a);
  const c = p.nextFree();
  t.not(c, a);
  p.take(c, true);
  for (let off = p.nextFree(); off >= 0 && off !== a; off = p.nextFree()) p.take(off, true);
  t.is(p.nextFree(), a, 'after the range wraps the released address comes back');
});

test('pool: ip-range restricts dynamic allocation; custom gateway', (t) => {
  const p = new Pool({ subnet: '10.9.0.0/24', ipRange: '10.9.0.128/30', gateway: '10.9.0.254' });
  t.is(p.config.gateway, '10.9.0.254');
  const got: string[] = [];
  for (let off = p.nextFree(); off >= 0; off = p.nextFree()) {
    p.take(off, true);
    got.push(formatIp(p.addressAt(off)));
  }
  t.deepEqual(got, ['10.9.0.128', '10.9.0.129', '10.9.0.130', '10.9.0.131']);
});

test('pool: bad configurations are refused with ERR_INVALID_ARGUMENT', (t) => {
  const bad = [
    { subnet: '10.9.0.5/24' },
    { subnet: '10.9.0.0/33' },
    { subnet: '10.9.0.0/32' },
    { subnet: '10.9.0.0/31' },
    { subnet: 'banana' },
    { subnet: '10.9.0.0/24', gateway: '10.8.0.1' },
    { subnet: '10.9.0.0/24', gateway: '10.9.0.0' },
    { subnet: '10.9.0.0/24', gateway: '10.9.0.255' },
    { subnet: '10.9.0.0/24', ipRange: '10.10.0.0/28' },
    { subnet: '10.9.0.0/24', ipRange: '10.9.0.0/23' },
    { subnet: '10.9.0.0/24', gateway: 'fd00::1' },
    { subnet: '10.0.0.0/7' },
  ];
  for (const cfg of bad) {
    const e = t.throws(() => new Pool(cfg), undefined, JSON.stringify(cfg));
    t.is((e as { code?: string }).code, 'ERR_INVALID_ARGUMENT', JSON.stringify(cfg));
  }
});

test('pool: static addresses are checked against gateway, reserved and used', (t) => {
  const p = new Pool({ subnet: '10.9.0.0/24', auxAddresses: { router: '10.9.0.9' } });
  t.is((t.throws(() => p.checkStatic(parseIp('10.9.0.1'))) as { code: string }).code, 'ERR_ADDRESS_IN_USE');
  t.is((t.throws(() => p.checkStatic(parseIp('10.9.0.9'))) as { code: string }).code, 'ERR_INVALID_ARGUMENT');
  t.is((t.throws(() => p.checkStatic(parseIp('10.9.1.9'))) as { code: string }).code, 'ERR_INVALID_ARGUMENT');
  const off = p.checkStatic(parseIp('10.9.0.50'));
  p.take(off, false);
  t.is((t.throws(() => p.checkStatic(parseIp('10.9.0.50'))) as { code: string }).code, 'ERR_ADDRESS_IN_USE');
});

test('ip parsing and formatting round-trip, strictly', (t) => {
  t.is(formatIp(parseIp('fd00:0:0::1')), 'fd00::1');
  t.is(formatIp(parseIp('::ffff:10.1.2.3')), '::ffff:a01:203');
  t.is(formatIp(parseIp('10.1.2.3')), '10.1.2.3');
  for (const s of ['10.1.2', '10.01.2.3', '256.1.1.1', '', ' 10.1.1.1', 'fe80::1%eth0']) {
    t.throws(() => parseIp(s), undefined, s);
  }
  t.throws(() => parseCidr('10.0.0.0'));
  t.throws(() => parseSubnet('10.0.0.1/8'));
});

test('automatic subnet choice skips taken prefixes, routes and nameservers', (t) => {
  t.is(chooseSubnet(DEFAULT_POOLS, []), '172.17.0.0/16');
  t.is(chooseSubnet(DEFAULT_POOLS, [parseSubnet('172.17.0.0/16')]), '172.18.0.0/16');
  // a /12 route covering all of 172.16-31 pushes the choice to 192.168
  t.is(chooseSubnet(DEFAULT_POOLS, [parseSubnet('172.16.0.0/12')]), '192.168.0.0/20');
  const ns = parseCidr('192.168.0.53/32');
  t.is(chooseSubnet([{ base: '192.168.0.0/16', size: 20 }], [ns]), '192.168.16.0/20');
  const e = t.throws(() => chooseSubnet([{ base: '10.0.0.0/30', size: 30 }], [parseSubnet('10.0.0.0/30')]));
  t.is((e as { code: string }).code, 'ERR_POOL_EXHAUSTED');
  t.regex((e as Error).message, /10\.0\.0\.0\/30/);
});
