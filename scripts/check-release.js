// Proves that the release addon (npm run build:native, as the demo, the bench
// and the packages use it) carries no fault-injection hooks: the addon says it
// was built without them, and no built .node file holds the CNM_FAULT name.
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import * as native from '../index.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const problems = [];
if (native.faultInjectionEnabled()) problems.push('faultInjectionEnabled() is true');
const addons = readdirSync(root).filter((f) => f.endsWith('.node'));
if (addons.length === 0) problems.push('no .node file: run npm run build:native first');
for (const f of addons) {
  if (readFileSync(new URL(f, `file://${root}`)).includes('CNM_FAULT')) problems.push(`${f} contains CNM_FAULT`);
}
if (problems.length > 0) {
  console.error(`release addon check failed: ${problems.join('; ')}`);
  process.exit(1);
}
console.log(`release addon check: ${addons.join(', ')} has no fault-injection hooks`);
