// Firewall behaviour on the iptables backend.
import { firewallSuite } from './helpers/firewall-suite.js';

firewallSuite('iptables');
