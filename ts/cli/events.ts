/** `cnm events`: the host's network events, as `docker events` prints them. */
import { parseTimestamp } from '../daemon/filters.js';
import type { CnmEvent, EventFilters } from '../events.js';
import { list, parse, str, usage } from './args.js';
import { type CliContext, kvFilters, withController } from './context.js';
import { byText } from '../compare.js';
export { EVENTS_USAGE } from './usage.js';

/** "2026-11-30T19:40:00.123456789Z network create ID (name=x, type=bridge)", as docker prints it. */
export function eventLine(e: CnmEvent): string {
  // events are taken in milliseconds (timeNano, a float, cannot hold more at this size)
  const ms = Math.round(e.timeNano / 1e6);
  const when = `${new Date(ms).toISOString().slice(0, 19)}.${String(ms % 1000).padStart(3, '0')}000000Z`;
  const attrs = Object.entries(e.Actor.Attributes)
    .sort(([a], [b]) => byText(a, b))
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  return `${when} ${e.Type} ${e.Action} ${e.Actor.ID}${attrs ? ` (${attrs})` : ''}`;
}

export async function eventsCommand(ctx: CliContext, args: string[]): Promise<number> {
  const { values: v, positionals } = parse(args, {
    filter: { type: 'string', short: 'f', multiple: true },
    format: { type: 'string' },
    since: { type: 'string' },
    until: { type: 'string' },
  });
  if (positionals.length) throw usage(`cnm events takes no arguments: ${positionals.join(' ')}`, positionals[0]);
  const filters: EventFilters = kvFilters(list(v.filter));
  const format = str(v.format);
  if (format !== undefined && format !== 'json' && format.replace(/\s/g, '') !== '{{json.}}') throw usage(`--format ${format}: expected json or '{{json .}}'`, format);
  const when = (s: string | undefined) => (s === undefined ? undefined : parseTimestamp(s) / 1000);
  const since = when(str(v.since));
  const until = when(str(v.until));
  return withController(ctx, v, async (ctl) => {
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      for await (const e of ctl.events({ since, until, filters }, stop.signal)) ctx.out(format ? JSON.stringify(e) : eventLine(e));
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    return 0;
  });
}
