// `cnm demo` runs end to end and leaves nothing behind (the README's demo command).
import test from 'ava';
import { native } from '../ts/native.js';
import { cnm } from './helpers/cli.js';

test('cnm demo pings, exchanges TCP, prints a summary and cleans up', async (t) => {
  const r = cnm(['demo']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /isolated host netns cnm-demo-\d+/);
  t.regex(r.stdout, /SANDBOX\s+INTERFACE\s+ADDRESS/);
  t.regex(r.stdout, /ping .* 0% loss/);
  t.regex(r.stdout, /TCP .* 100 round trips/);
  t.regex(r.stdout, /demo OK/);
  const left = (await native.netnsList()).filter((n) => n.startsWith('cnm-demo-'));
  t.deepEqual(left, []);
});
