/** `cnm port SANDBOX [PORT[/PROTO]]`: list published ports like `docker port`. */
import { CnmError, invalid } from '../errors.js';
import { parse, usage } from './args.js';
import { type CliContext, withController } from './context.js';

export async function portCommand(ctx: CliContext, argv: string[]): Promise<number> {
  const { values: v, positionals } = parse(argv, {});
  if (positionals.length < 1 || positionals.length > 2) throw usage('usage: cnm port SANDBOX [PORT[/PROTO]]');
  const [ref, filter] = positionals as [string, string | undefined];
  let want: string | undefined;
  if (filter !== undefined) {
    const m = /^(\d{1,5})(?:\/(tcp|udp|sctp))?$/.exec(filter);
    if (!m) throw invalid(`invalid port "${filter}": expected PORT or PORT/PROTO`, filter);
    want = `${m[1]}/${m[2] ?? 'tcp'}`;
  }
  return withController(ctx, v, async (ctl) => {
    const ports = ctl.getSandbox(ref).inspect().Ports;
    const keys = Object.keys(ports).filter((k) => want === undefined || k === want);
    if (want !== undefined && keys.length === 0) {
      throw new CnmError('ERR_INVALID_ARGUMENT', `no public port '${want}' published for ${ref}`, { value: want });
    }
    for (const k of keys.sort((a, b) => parseInt(a) - parseInt(b))) {
      for (const b of ports[k]!) {
        // as docker port prints them: IPv6 in brackets
        const at = `${b.HostIp.includes(':') ? `[${b.HostIp}]` : b.HostIp}:${b.HostPort}`;
        ctx.out(want === undefined ? `${k} -> ${at}` : at);
      }
    }
    return 0;
  });
}
