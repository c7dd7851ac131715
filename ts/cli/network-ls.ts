/**
 * The networks `cnm network ls` shows, read without the controller, drivers or
 * addon. Loading lmdb-js and reading through it costs a command about 25 ms, so
 * the listing is also kept in a small file beside the store, stamped with the
 * store's last committed transaction (read from LMDB's meta pages with plain
 * file reads): while nothing was committed since, `ls` reads that file alone.
 * The stamp is read before the store is, so a listing is never stamped newer
 * than what it shows; the boot id is in it too, as a machine crash may take back
 * commits whose meta pages were not yet on disk.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ControllerOptions } from '../controller.js';
import { bootId } from '../boot-id.js';
import { log } from '../log.js';
import { filterListing, networkListing, storeInUse } from '../network-filters.js';
import { STORE_FILE, committedStamp } from '../store/lmdb-meta.js';
import { locateStore } from '../store/locate.js';
import type { NetworkRecord } from '../types.js';
import { VERSION } from '../version.js';

/** the listing's file in the host's state dir */
export const LISTING_FILE = 'network-ls.json';

interface Listing {
  stamp: string;
  networks: NetworkRecord[];
}

function cached(file: string, stamp: string): NetworkRecord[] | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined; // none yet
  }
  try {
    const l = JSON.parse(text) as Listing;
    return l.stamp === stamp && Array.isArray(l.networks) ? l.networks : undefined;
  } catch (err) {
    log.info('the network listing file is unreadable: reading the store', { file, err });
    return undefined;
  }
}

function keep(file: string, stamp: string, networks: NetworkRecord[]): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, JSON.stringify({ stamp, networks } satisfies Listing));
    renameSync(tmp, file);
  } catch (err) {
    log.info('keeping the network listing failed (the next ls reads the store)', { file, err });
    rmSync(tmp, { force: true });
  }
}

/** The host's networks that match the filters, in creation order (not the cluster's: see the caller). */
export async function readNetworks(opts: ControllerOptions, filters: Record<string, string[]> | undefined): Promise<NetworkRecord[]> {
  const { hostDir } = locateStore(opts);
  const file = join(hostDir, LISTING_FILE);
  const committed = committedStamp(join(hostDir, STORE_FILE));
  // without a boot id a listing could outlive commits a crash took back: no listing then
  const boot = bootId();
  const stamp = committed === undefined || boot === '' ? undefined : `${VERSION}|${boot}|${committed}`;
  // `dangling` asks about endpoints, which the listing leaves out
  const listed = stamp === undefined || filters?.dangling !== undefined ? undefined : cached(file, stamp);
  if (listed !== undefined) return filterListing(listed, filters, () => false);
  const { openStoreView } = await import('../store-view.js');
  const { view } = openStoreView(opts);
  try {
    const networks = networkListing(view, []);
    if (stamp !== undefined) keep(file, stamp, networks);
    return filterListing(networks, filters, storeInUse(view));
  } finally {
    await view.close();
  }
}
