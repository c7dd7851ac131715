/** `cnm daemon [--socket PATH]`: serve the Docker Engine network API until stopped. */
import { API_VERSION, DEFAULT_SOCKET, startDaemon } from '../daemon/server.js';
import { parse, str, usage } from './args.js';
import type { CliContext } from './context.js';

export async function daemonCommand(ctx: CliContext, argv: string[]): Promise<number> {
  const { values: v, positionals } = parse(argv, { socket: { type: 'string', short: 'H' } });
  if (positionals.length) throw usage('cnm daemon takes no arguments');
  let socket = str(v.socket) ?? DEFAULT_SOCKET;
  if (socket.startsWith('unix://')) socket = socket.slice('unix://'.length);
  const d = await startDaemon({ socket, controller: ctx.options(v) });
  ctx.err(`cnm daemon listening on unix://${d.socket} (Docker API ${API_VERSION})`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await d.close();
  return 0;
}
