// Firewall behaviour on the iptables backend.
import test from 'ava';
import { firewallSuite } from './helpers/firewall-suite.js';
import { skipReason } from './helpers/tools.js';

const why = skipReason(['iptables', 'iptables-save', 'iptables-restore', 'ip6tables-save'], 'the iptables backend tests');
if (why) test.skip(why, () => undefined);
else firewallSuite('iptables');
