/** The `ip netns` files, /run/netns/NAME, as the JS thread sees them. */
import { lstatSync } from 'node:fs';
import { join } from 'node:path';

export const NETNS_RUN_DIR = '/run/netns';

/**
 * Whether /run/netns/NAME exists (NAME checked by the caller): a plain lstat,
 * as netcore's netnsExists does, without its trip off the JS thread and back
 * (0.1-0.4 ms when the addon's threads are busy; the lstat is microseconds).
 */
export function netnsFileExists(name: string): boolean {
  return lstatSync(join(NETNS_RUN_DIR, name), { throwIfNoEntry: false }) !== undefined;
}
