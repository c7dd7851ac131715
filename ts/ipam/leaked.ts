/**
 * The reconcile of an IPAM's leaked addresses, shared by the built-in IPAMs:
 * each candidate is freed in a transaction of its own that checks again that it
 * is still leaked (an endpoint recorded meanwhile keeps its address).
 */

/**
 * Free `candidates` one transaction each with `free` (false: no longer leaked);
 * with `dryRun`, only list them. Returns the addresses freed (or to free).
 */
export async function freeLeaked<T>(candidates: Array<[string, T]>, dryRun: boolean, free: (address: string, found: T) => Promise<boolean>): Promise<string[]> {
  if (dryRun) return candidates.map(([ip]) => ip);
  const done: string[] = [];
  for (const [ip, found] of candidates) if (await free(ip, found)) done.push(ip);
  return done;
}
