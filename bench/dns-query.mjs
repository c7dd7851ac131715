// Run inside a sandbox by bench/dns.js (`ip netns exec SB node dns-query.mjs SERVER`):
// for each name read on stdin, ask SERVER for its A record until an answer
// comes, then print the microseconds from reading the line to the answer and
// how many queries that took.
import { createSocket } from 'node:dgram';
import { createInterface } from 'node:readline';

const server = process.argv[2] ?? '127.0.0.11';
const sock = createSocket('udp4');
let id = 0;

function query(name) {
  id = (id + 1) & 0xffff;
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const head = Buffer.from([id >> 8, id & 0xff, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
  return { id, msg: Buffer.concat([head, ...labels, Buffer.from([0, 0, 1, 0, 1])]) };
}

function ask(name) {
  return new Promise((resolve) => {
    const start = process.hrtime.bigint();
    const { id: want, msg } = query(name);
    let tries = 1;
    const again = () => {
      tries++;
      sock.send(msg, 53, server);
    };
    const retry = setInterval(again, 20);
    const onMsg = (m) => {
      if (m.readUInt16BE(0) !== want) return;
      // an answer with records: the name resolves
      if ((m[3] & 0x0f) === 0 && m.readUInt16BE(6) > 0) {
        clearInterval(retry);
        sock.off('message', onMsg);
        resolve(`${Number(process.hrtime.bigint() - start) / 1000} ${tries}`);
      } else {
        again();
      }
    };
    sock.on('message', onMsg);
    sock.send(msg, 53, server);
  });
}

sock.bind(0, () => {
  process.stdout.write('ready\n');
  const rl = createInterface({ input: process.stdin });
  let chain = Promise.resolve();
  rl.on('line', (name) => {
    chain = chain.then(async () => process.stdout.write(`${await ask(name)}\n`));
  });
  rl.on('close', () => chain.then(() => process.exit(0)));
});
