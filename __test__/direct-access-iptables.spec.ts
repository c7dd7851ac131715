// Docker 28's bridge networks on the iptables backend (see helpers/direct-access-suite.ts).
import test from 'ava';
import { directAccessSuite } from './helpers/direct-access-suite.js';
import { skipReason } from './helpers/tools.js';

const why = skipReason(['iptables', 'iptables-save', 'iptables-restore', 'ip6tables-save'], 'the iptables backend tests');
if (why) test.skip(why, () => undefined);
else directAccessSuite('iptables', 2);
