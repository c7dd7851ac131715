/**
 * A network's devices on this host, made once while it has endpoints here:
 * concurrent first joins share one making (two creates of one bridge would
 * collide), later joins skip it, and a failed making is tried again by the
 * next join (its waiters see the error). Reconcile forces a new one.
 */
export class OncePerNetwork {
  private readonly made = new Map<string, Promise<void>>();

  async ensure(netId: string, make: () => Promise<void>, force = false): Promise<void> {
    if (force) this.made.delete(netId);
    let making = this.made.get(netId);
    if (!making) {
      const p = make();
      p.catch(() => {
        if (this.made.get(netId) === p) this.made.delete(netId);
      });
      this.made.set(netId, p);
      making = p;
    }
    await making;
  }

  /** The network's devices are gone (or going): the next join makes them. */
  forget(netId: string): void {
    this.made.delete(netId);
  }

  has(netId: string): boolean {
    return this.made.has(netId);
  }

  networks(): string[] {
    return [...this.made.keys()];
  }
}
