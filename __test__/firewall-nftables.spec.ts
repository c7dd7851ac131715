// Firewall behaviour on the nftables backend (the default).
import { firewallSuite } from './helpers/firewall-suite.js';

firewallSuite('nftables');
