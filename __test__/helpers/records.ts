/**
 * The records a controller's store holds, without its change log (`meta/rev`,
 * `rev/…`), its event log (`evt/…`, `evtseq`) and its reaper's key (`grave/…`,
 * cleared a moment after a removal): what "the store did not
 * change" compares, since a transaction that commits and one that undoes it
 * leave the records as they were but two revisions (and, for a network made and
 * removed, two events) more.
 */
import type { NetworkController } from '../../ts/controller.js';

export function storeRecords(ctl: NetworkController): Array<[string, unknown]> {
  return ctl.store.range<unknown>('').filter(([k]) => k !== 'meta/rev' && k !== 'meta/format' && !k.startsWith('rev/') && k !== 'evtseq' && !k.startsWith('evt/') && k !== 'host/reconciled' && !k.startsWith('grave/'));
}
