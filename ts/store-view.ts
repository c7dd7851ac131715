/**
 * The host's stored state as a read-only view, changing nothing: what
 * `NetworkController.open` starts from.
 */
import type { ControllerOptions } from './options.js';
import { LmdbStore } from './store/lmdb-store.js';
import { type StoreLocation, locateStore } from './store/locate.js';
import { MemoryStore } from './store/memory-store.js';
import type { Store } from './store/store.js';

export { DEFAULT_STATE_DIR } from './store/locate.js';

export interface StoreView extends StoreLocation {
  /** the stored records; an empty store in memory for a host never set up */
  view: Store;
}

/** Check the options, the host netns and the state dir, then open the store for reading. */
export function openStoreView(opts: ControllerOptions): StoreView {
  const where = locateStore(opts);
  return { ...where, view: LmdbStore.openReadOnly(where.hostDir) ?? new MemoryStore() };
}
