// Generated Engine API requests for the daemon's fuzz test: the daemon's routes
// with wrong methods, bad escapes, unicode and odd segments; query strings of
// junk; JSON bodies of wrong types and shapes, huge numbers, deep nesting and
// text that is not JSON. Seeded, so a failure can be replayed from its index.
import { rng } from '../../ts/sim/rng.js';


export interface FuzzRequest {
  method: string;
  /** the request target as sent: not escaped beyond what was generated */
  target: string;
  body: string;
}

const METHODS = ['GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'HEAD', 'OPTIONS', 'get', 'TRACE', 'FOO'];
const VERSIONS = ['', '', '', '/v1.41', '/v1.47', '/v1.24', '/v1.9', '/v99.1', '/vX', '/v1.41.2', '/v1'];

export function fuzzRequests(seed: number, count: number, names: { network: string; sandbox: string }): FuzzRequest[] {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));

  const junkStrings = [
    '',
    ' ',
    'a b',
    '%ZZ',
    '%',
    '%E2%82',
    '%00',
    '..',
    '.',
    '\u00e9t\u00e9',
    '\u{1F600}',
    '\u202e',
    'x'.repeat(300),
    '-',
    'a/b',
    '<script>',
    '"quoted"',
    "'",
    '\\',
    'null',
    '0',
    '-1',
    'bridge',
    'host',
    'none',
    names.network,
    names.sandbox,
  ];
  const segment = (): string => {
    switch (int(0, 5)) {
      case 0:
        return pick(junkStrings);
      case 1:
        return encodeURIComponent(pick(junkStrings));
      case 2:
        return Math.floor(r() * 1e16).toString(16);
      case 3:
        return `%${pick(['ZZ', '4', 'G1', 'C3%28', 'FF', '2F', '25'])}`;
      default:
        return pick([names.network, names.sandbox, 'create', 'prune', 'json', 'connect', 'disconnect']);
    }
  };
  const pathOf = (): string => {
    const v = pick(VERSIONS);
    switch (int(0, 17)) {
      case 12:
      case 13:
      case 14:
        return `${pick(['', '/v1.47', '/v1.41'])}/networks/create`;
      case 15:
      case 16:
        return `${pick(['', '/v1.47'])}/networks/${names.network}/${pick(['connect', 'connect', 'disconnect'])}`;
      case 0:
        return `${v}/networks`;
      case 1:
        return `${v}/networks/create`;
      case 2:
        return `${v}/networks/${segment()}`;
      case 3:
        return `${v}/networks/${segment()}/${pick(['connect', 'disconnect', segment()])}`;
      case 4:
        return `${v}/networks/prune`;
      case 5:
        return `${v}/containers/${segment()}/json`;
      case 6:
        return `${v}/containers/json`;
      case 7:
        return `${v}/${pick(['_ping', 'version', 'info', 'swarm/leave', 'swarm', 'images/json', ''])}`;
      case 8:
        return `${v}/events`;
      case 9:
        return `${v}/${segment()}/${segment()}`;
      case 10:
        return `${pick(['', '//', '/../', '/./', '/%2e%2e/'])}networks`;
      default:
        return `${v}/networks/${segment()}/${segment()}/${segment()}`;
    }
  };

  // JSON values of every type, including the awkward ones
  const scalar = (): unknown =>
    pick([
      null,
      true,
      false,
      0,
      -1,
      1.5,
      1e308,
      -1e308,
      2 ** 53 + 1,
      Number.MAX_SAFE_INTEGER,
      '',
      ' ',
      'x',
      pick(junkStrings),
      '10.0.0.0/8',
      '10.999.0.0/24',
      'fe80::/10',
      '::/0',
      '0.0.0.0/0',
      '1.2.3.4',
      '02:42:ac:11:00:02',
      'zz:zz',
      '65536',
      '-5',
      'x'.repeat(int(0, 5000)),
    ]);
  const value = (depth = 0): unknown => {
    const k = int(0, depth > 2 ? 0 : 5);
    if (k <= 2) return scalar();
    if (k === 3) return Array.from({ length: int(0, 3) }, () => value(depth + 1));
    return Object.fromEntries(Array.from({ length: int(0, 3) }, () => [pick(['Subnet', 'Gateway', 'IPRange', 'a', '', 'Name', 'x'.repeat(50)]), value(depth + 1)]));
  };
  const maybe = (f: () => unknown) => (r() < 0.5 ? f() : undefined);
  const createBody = () => ({
    Name: r() < 0.6 ? `fz${int(0, 1e6)}${pick(['', ' ', '\u00e9', '/x', ''])}` : value(),
    Driver: maybe(() => pick(['bridge', 'macvlan', 'overlay', 'routed', 'null', 'host', 'nope', '', value()])),
    Internal: maybe(value),
    Attachable: maybe(value),
    EnableIPv6: maybe(value),
    EnableIPv4: maybe(value),
    CheckDuplicate: maybe(value),
    IPAM: maybe(() =>
      r() < 0.5
        ? { Driver: maybe(() => pick(['default', 'nope', value()])), Config: r() < 0.7 ? [{ Subnet: scalar(), Gateway: maybe(scalar), IPRange: maybe(scalar), AuxiliaryAddresses: maybe(value) }] : value(), Options: maybe(value) }
        : value(),
    ),
    Options: maybe(() => (r() < 0.5 ? { [pick(['com.docker.network.driver.mtu', 'com.docker.network.bridge.name', 'parent', 'macvlan_mode', 'x'])]: scalar() } : value())),
    Labels: maybe(value),
    ConfigFrom: maybe(value),
    Scope: maybe(value),
  });
  const connectBody = () => ({
    Container: r() < 0.6 ? names.sandbox : value(),
    EndpointConfig: maybe(() =>
      r() < 0.6
        ? {
            IPAMConfig: maybe(() => ({ IPv4Address: maybe(scalar), IPv6Address: maybe(scalar), LinkLocalIPs: maybe(value) })),
            Aliases: maybe(value),
            Links: maybe(value),
            MacAddress: maybe(scalar),
            DriverOpts: maybe(value),
            NetworkID: maybe(scalar),
          }
        : value(),
    ),
    Force: maybe(value),
  });
  // a valid body with one field changed to anything: reaches the checks behind the first ones
  let nets = 0;
  const mutate = (body: Record<string, unknown>, paths: string[][]): Record<string, unknown> => {
    const path = pick(paths);
    let o: Record<string, unknown> = body;
    for (const k of path.slice(0, -1)) {
      const next = o[k];
      if (next === null || typeof next !== 'object') return body;
      o = next as Record<string, unknown>;
    }
    if (r() < 0.2) delete o[path[path.length - 1]!];
    else o[path[path.length - 1]!] = r() < 0.5 ? scalar() : value();
    return body;
  };
  const nearCreate = () => {
    const n = nets++;
    const body = {
      Name: `fzn${seed}x${n}`,
      Driver: 'bridge',
      IPAM: { Driver: 'default', Config: [{ Subnet: `10.${236 + ((n >> 8) & 3)}.${n & 255}.0/24`, Gateway: `10.${236 + ((n >> 8) & 3)}.${n & 255}.1` }] },
      Options: { 'com.docker.network.bridge.enable_icc': 'true' },
      Labels: { k: 'v' },
      EnableIPv6: false,
      Internal: false,
    };
    return mutate(body, [['Name'], ['Driver'], ['IPAM'], ['IPAM', 'Driver'], ['IPAM', 'Config'], ['Options'], ['Labels'], ['EnableIPv6'], ['Internal'], ['Options', 'com.docker.network.bridge.enable_icc']]);
  };
  const nearConnect = () =>
    mutate(
      { Container: names.sandbox, EndpointConfig: { IPAMConfig: { IPv4Address: `10.235.0.${int(2, 250)}` }, Aliases: ['a'], MacAddress: '02:42:0a:eb:00:09', DriverOpts: {} } },
      [['Container'], ['EndpointConfig'], ['EndpointConfig', 'IPAMConfig'], ['EndpointConfig', 'Aliases'], ['EndpointConfig', 'MacAddress'], ['EndpointConfig', 'DriverOpts']],
    );
  const deep = (d: number) => (r() < 0.5 ? '['.repeat(d) + ']'.repeat(d) : `${'{"a":'.repeat(d)}1${'}'.repeat(d)}`);
  const bodyOf = (path: string): string => {
    switch (int(0, 9)) {
      case 0:
        return '';
      case 1:
        return pick(['{', 'nul', '[]', '"x"', '1', 'true', '{"Name":}', '\u0000', '{"Name":"a",}', '\ufeff{}', '{"Name":"\\ud800"}']);
      case 2:
        return deep(int(10, 20000));
      case 3:
        return JSON.stringify(value());
      case 4:
        return `{"Name": ${pick(['1e400', '-0', '123456789012345678901234567890', '0x10', 'NaN', 'Infinity'])}}`;
      case 5:
      case 6:
      case 7:
        return JSON.stringify(path.includes('connect') ? nearConnect() : nearCreate());
      default:
        return JSON.stringify(path.includes('connect') ? connectBody() : createBody());
    }
  };
  const queryOf = (): string => {
    if (r() < 0.5) return '';
    const parts = Array.from({ length: int(1, 3) }, () => {
      const k = pick(['filters', 'scope', 'force', 'since', 'until', 'verbose', 'all', '%ZZ', '']);
      const v =
        k === 'filters'
          ? pick([encodeURIComponent(JSON.stringify(value())), encodeURIComponent('{"name":["x"]}'), encodeURIComponent('{"dangling":["maybe"]}'), '%7B', '{'])
          : pick(['', '1', 'true', '-1', 'x', '%ZZ', '99999999999999999999', encodeURIComponent(pick(junkStrings))]);
      return `${k}=${v}`;
    });
    return `?${parts.join('&')}`;
  };

  const out: FuzzRequest[] = [];
  for (let i = 0; i < count; i++) {
    const path = pathOf();
    let target = `${path}${queryOf()}`;
    // events would stream: only ones with an end in the past, which answer at once
    if (path.endsWith('/events')) target = `${path}?since=1&until=2`;
    const method = path.endsWith('/create') || path.includes('connect') || path.endsWith('/prune') ? pick(['POST', 'POST', 'POST', ...METHODS]) : pick(METHODS);
    out.push({ method, target, body: method === 'GET' || method === 'HEAD' ? '' : bodyOf(path) });
  }
  return out;
}
