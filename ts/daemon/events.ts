/** Network events (create, connect, disconnect, destroy) for GET /events. */
import { EventEmitter } from 'node:events';

export interface DockerEvent {
  Type: 'network';
  Action: 'create' | 'connect' | 'disconnect' | 'destroy';
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: 'local';
  time: number;
  timeNano: number;
}

export class EventBus {
  private readonly emitter = new EventEmitter();
  private readonly recent: DockerEvent[] = [];

  emit(action: DockerEvent['Action'], id: string, attributes: Record<string, string>): void {
    const ns = BigInt(Date.now()) * 1_000_000n;
    const ev: DockerEvent = {
      Type: 'network',
      Action: action,
      Actor: { ID: id, Attributes: attributes },
      scope: 'local',
      time: Math.floor(Date.now() / 1000),
      timeNano: Number(ns),
    };
    this.recent.push(ev);
    if (this.recent.length > 1000) this.recent.shift();
    this.emitter.emit('event', ev);
  }

  /** events since a unix time (seconds), then live ones until unsubscribed */
  subscribe(since: number | undefined, fn: (e: DockerEvent) => void): () => void {
    if (since !== undefined) for (const e of this.recent) if (e.time >= since) fn(e);
    this.emitter.on('event', fn);
    return () => this.emitter.off('event', fn);
  }
}
