/**
 * The one resolver of a host netns: whoever serves it holds the host's DNS
 * lock and answers on its control socket. A daemon or program that serves DNS
 * itself takes over from the CLI's background resolver (it asks it to hand
 * over); a second daemon is refused.
 */
import { CnmError } from '../errors.js';
import { log } from '../log.js';
import { native } from '../native.js';
import type { Store } from '../store/store.js';
import type { RemotePeers } from './service.js';
import type { Server } from 'node:net';
import { rmSync } from 'node:fs';
import { askResolver, controlPath, lockPath, serveControl } from './control.js';
import { DnsService } from './service.js';

export interface HostResolverOptions {
  /** the CLI's background resolver: gives way when asked */
  background?: boolean;
  /** called once it gave way */
  onHandover?: () => void;
}

export class HostResolver {
  private constructor(
    readonly service: DnsService,
    private readonly lock: number,
    private readonly server: Server,
    private readonly path: string,
  ) {}

  static async claim(store: Store, hostNetns: string | null, hostDir: string, opts: HostResolverOptions = {}, cluster?: () => RemotePeers | undefined): Promise<HostResolver> {
    const path = controlPath(hostDir);
    const lock = native.lockFileOpen(lockPath(hostDir));
    try {
      if (!native.lockFileTry(lock)) {
        const answer = opts.background ? undefined : await askResolver(path, 'handover');
        if (answer !== 'bye') {
          throw new CnmError('ERR_SOCKET_IN_USE', `another process serves DNS for this host (its control socket is ${path}): stop it first`, { value: path });
        }
        await Promise.race([
          native.lockFileWait(lock),
          new Promise((_, reject) => setTimeout(() => reject(new CnmError('ERR_SOCKET_IN_USE', 'the background resolver did not give way within 5 s', { value: path })), 5000).unref()),
        ]);
      }
      const service = await DnsService.start(store, hostNetns, cluster);
      let self: HostResolver | undefined;
      const server = await serveControl(path, async (req) => {
        if (req === 'sync') {
          await service.sync();
          return 'ok';
        }
        if (req === 'handover') {
          if (!opts.background || !self) return 'busy';
          await self.close();
          opts.onHandover?.();
          return 'bye';
        }
        return 'pong';
      }).catch(async (e: unknown) => {
        await service.stop();
        throw e;
      });
      self = new HostResolver(service, lock, server, path);
      return self;
    } catch (e) {
      native.lockFileClose(lock);
      throw e;
    }
  }

  private closing: Promise<void> | undefined;

  /** Stop serving: the sandboxes' sockets close, the socket file and the lock go. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.server.close();
      rmSync(this.path, { force: true });
      await this.service.stop().catch((err: unknown) => log.warn('stopping the resolver failed', { err }));
      native.lockFileClose(this.lock);
    })();
    return this.closing;
  }
}
