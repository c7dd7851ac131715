// Docker 28's bridge networks on the nftables backend (see helpers/direct-access-suite.ts).
import { directAccessSuite } from './helpers/direct-access-suite.js';

directAccessSuite('nftables', 1);
