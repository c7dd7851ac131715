// The locale-free orderings that replaced localeCompare (whose ICU start-up cost a command ~8 ms)
import test from 'ava';
import { byText, natural } from '../ts/compare.js';

test('natural orders interface names by their numbers, then by text', (t) => {
  const names = ['eth10', 'eth2', 'eth0', 'eth1', 'eth', 'dummy3', 'eth1a', 'eth01'];
  t.deepEqual([...names].sort(natural), ['dummy3', 'eth', 'eth0', 'eth01', 'eth1', 'eth1a', 'eth2', 'eth10']);
  t.is(natural('eth3', 'eth3'), 0);
});

test('byText is code-unit order, as Go sorts map keys and ISO timestamps sort by time', (t) => {
  t.deepEqual(['b', 'B', 'a', 'A', '_'].sort(byText), ['A', 'B', '_', 'a', 'b']);
  t.true(byText('2026-12-01T00:00:00.000Z', '2026-12-01T00:00:01.000Z') < 0);
  t.is(byText('x', 'x'), 0);
});
