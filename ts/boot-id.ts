/** The running kernel's boot id: what tells state written before a reboot (or a machine crash) from state written since. */
import { readFileSync } from 'node:fs';
import { log } from './log.js';

/** The boot id, '' when the kernel does not give one (callers then trust nothing stamped with it). */
export function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch (err) {
    log.debug('no boot id', { err });
    return '';
  }
}
