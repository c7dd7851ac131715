// A child process for netcore.spec.ts: fires <count> link deletes at once at one
// netns (one rtnetlink socket) and reports how they ended, then makes one more
// request. CNM_NETLINK_RCVBUF in its environment shrinks the socket's receive
// buffer so that replies get lost.
//   node --import tsx __test__/helpers/netlink-flood.ts <netns> <count>
// Prints one JSON line: { ok, lost, other, lo }.
import * as native from '../../index.js';

const [netns, countArg] = process.argv.slice(2);
const out = { ok: 0, lost: 0, other: [] as string[], lo: false };
await Promise.all(
  Array.from({ length: Number(countArg) }, (_, i) =>
    native.deleteLink(netns!, `nx${i}`).then(
      () => out.ok++,
      (e: Error & { code?: string }) => {
        if (e.code === 'ERR_KERNEL' && /reply lost|netlink connection closed before the request was sent/.test(e.message)) out.lost++;
        else out.other.push(`${e.code}: ${e.message}`);
      },
    ),
  ),
);
// after an overrun the connection is replaced: the next request is answered
out.lo = (await native.listLinks(netns!)).some((l) => l.name === 'lo');
console.log(JSON.stringify(out));
