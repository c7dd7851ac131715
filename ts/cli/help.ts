/**
 * The help of each command, as docker prints it: usage line, what it does, and
 * every flag with its type and meaning. One table, also read by the completion
 * scripts. Loaded by help alone (it imports nothing).
 */

/** One flag: [short, long, value type ('' for a switch), what it does]. */
export type Flag = [string, string, string, string];

export interface CommandHelp {
  usage: string;
  summary: string;
  flags: Flag[];
}

const SANDBOX_FLAGS: Flag[] = [
  ['', 'net', 'string', 'Network to connect it to: a network, host, none or container:NAME (default "bridge")'],
  ['', 'network', 'string', 'Same as --net'],
  ['', 'ip', 'string', 'IPv4 address on its network (e.g., 172.30.100.104)'],
  ['', 'ip6', 'string', 'IPv6 address on its network (e.g., 2001:db8::33)'],
  ['', 'alias', 'list', 'Network-scoped alias for it'],
  ['p', 'publish', 'list', "Publish a port to the host: [HOST_IP:][HOST_PORT:]PORT[/PROTO]"],
  ['', 'dns', 'list', 'Upstream DNS server for names not of its networks'],
  ['', 'dns-search', 'list', 'DNS search domain ("." for none)'],
  ['', 'dns-option', 'list', 'resolv.conf option (e.g., ndots:2)'],
  ['', 'add-host', 'list', 'Add a custom host-to-IP mapping (NAME:IP)'],
  ['', 'hostname', 'string', 'Its host name (default: its name)'],
  ['', 'link', 'list', 'Add a legacy link to another sandbox (NAME[:ALIAS])'],
  ['', 'expose', 'list', 'Expose a port or a range of ports without publishing it'],
  ['', 'mac-address', 'string', 'Its MAC address on its network (e.g., 02:42:ac:11:00:02)'],
  ['', 'link-local-ip', 'list', 'A link-local address for its interface'],
  ['', 'netns-path', 'string', 'Use this existing network namespace (e.g., /proc/PID/ns/net) instead of a new one'],
];

const LS_FLAGS: Flag[] = [
  ['f', 'filter', 'filter', 'Provide filter values (e.g., "driver=bridge")'],
  ['', 'format', 'string', 'Format output: table (default), json (one object per line), "table TEMPLATE" or a Go template'],
  ['', 'no-trunc', '', 'Do not truncate the output'],
  ['q', 'quiet', '', 'Only display IDs (sandboxes: names)'],
];

export const HELP: Record<string, CommandHelp> = {
  'network create': {
    usage: 'cnm network create [OPTIONS] NETWORK',
    summary: 'Create a network',
    flags: [
      ['', 'attachable', '', 'Enable manual sandbox attachment (kept, as Docker)'],
      ['', 'aux-address', 'map', 'Auxiliary IPv4 or IPv6 addresses used by the network driver (name=IP)'],
      ['d', 'driver', 'string', 'Driver to manage the network: bridge, macvlan, overlay, routed or a plugin (default "bridge")'],
      ['', 'gateway', 'strings', 'IPv4 or IPv6 gateway for the master subnet'],
      ['', 'internal', '', 'Restrict external access to the network'],
      ['', 'ip-range', 'strings', 'Allocate addresses from a sub-range'],
      ['', 'ipam-driver', 'string', 'IP address management driver (default "default")'],
      ['', 'ipam-opt', 'map', 'Set IPAM driver specific options'],
      ['', 'ipv4', '', 'Enable or disable IPv4 address assignment (--ipv4=false)'],
      ['', 'ipv6', '', 'Enable or disable IPv6 address assignment'],
      ['', 'label', 'list', 'Set metadata on a network'],
      ['', 'mtu', 'string', 'MTU of the network (com.docker.network.driver.mtu)'],
      ['o', 'opt', 'map', 'Set driver specific options (macvlan: parent=IF[.VLAN], macvlan_mode; routed: block_size; bridge: com.docker.network.bridge.*)'],
      ['', 'subnet', 'strings', 'Subnet in CIDR format that represents a network segment'],
    ],
  },
  'network ls': { usage: 'cnm network ls [OPTIONS]', summary: 'List networks (filters: name, id, driver, label, type, scope, dangling)', flags: LS_FLAGS },
  'network inspect': { usage: 'cnm network inspect [OPTIONS] NETWORK [NETWORK...]', summary: 'Display detailed information on one or more networks', flags: [['f', 'format', 'string', 'Format output using a Go template']] },
  'network rm': { usage: 'cnm network rm NETWORK [NETWORK...]', summary: 'Remove one or more networks', flags: [] },
  'network prune': {
    usage: 'cnm network prune [OPTIONS]',
    summary: 'Remove all unused networks (not the predefined ones)',
    flags: [
      ['', 'filter', 'filter', 'Provide filter values (e.g., "until=24h", "label=k=v", "label!=k")'],
      ['f', 'force', '', 'Do not prompt for confirmation'],
    ],
  },
  'network connect': {
    usage: 'cnm network connect [OPTIONS] NETWORK SANDBOX',
    summary: 'Connect a sandbox to a network',
    flags: [
      ['', 'alias', 'strings', 'Add network-scoped alias for the sandbox'],
      ['', 'driver-opt', 'strings', 'Driver options for the network'],
      ['', 'ip', 'string', 'IPv4 address (e.g., "172.30.100.104")'],
      ['', 'ip6', 'string', 'IPv6 address (e.g., "2001:db8::33")'],
      ['', 'link', 'list', 'Add link to another sandbox (NAME[:ALIAS])'],
      ['', 'link-local-ip', 'strings', 'Add a link-local address for the sandbox'],
      ['', 'mac-address', 'string', 'MAC address of the sandbox on this network'],
      ['p', 'publish', 'list', 'Publish a port to the host: [HOST_IP:][HOST_PORT:]PORT[/PROTO]'],
    ],
  },
  'network disconnect': { usage: 'cnm network disconnect NETWORK SANDBOX', summary: 'Disconnect a sandbox from a network', flags: [] },
  'sandbox create': { usage: 'cnm sandbox create [OPTIONS] NAME', summary: 'Create a sandbox: a named network namespace (/run/netns/NAME) on a network', flags: SANDBOX_FLAGS },
  'sandbox ls': { usage: 'cnm sandbox ls [OPTIONS]', summary: 'List sandboxes (filters: id, name, network)', flags: LS_FLAGS },
  'sandbox inspect': { usage: 'cnm sandbox inspect [OPTIONS] SANDBOX [SANDBOX...]', summary: 'Display detailed information on one or more sandboxes', flags: [['f', 'format', 'string', 'Format output using a Go template']] },
  'sandbox rm': { usage: 'cnm sandbox rm SANDBOX [SANDBOX...]', summary: 'Remove one or more sandboxes', flags: [] },
  'sandbox prune': {
    usage: 'cnm sandbox prune [OPTIONS]',
    summary: 'Remove all sandboxes no process uses',
    flags: [
      ['', 'filter', 'filter', 'Provide filter values (e.g., "until=24h")'],
      ['f', 'force', '', 'Do not prompt for confirmation'],
    ],
  },
  run: {
    usage: 'cnm run [OPTIONS] -- COMMAND [ARG...]',
    summary: 'Run a command in a new sandbox',
    flags: [['', 'name', 'string', 'Name of the sandbox (default: a generated one)'], ['', 'rm', '', 'Remove the sandbox when the command exits'], ...SANDBOX_FLAGS],
  },
  port: { usage: 'cnm port SANDBOX [PORT[/PROTO]]', summary: 'List port mappings or a specific mapping for the sandbox', flags: [] },
  'system reconcile': { usage: 'cnm system reconcile [OPTIONS]', summary: 'Bring the store and the kernel into agreement', flags: [['', 'dry-run', '', 'Only say what would be done']] },
  'system check': { usage: 'cnm system check', summary: 'Check every stored record and the kernel against the store, changing nothing (exit 1 when something is wrong)', flags: [] },
  'system hosts': { usage: 'cnm system hosts', summary: "The cluster's hosts, live or gone, and the addresses they hold", flags: [] },
  'system forget-host': { usage: 'cnm system forget-host ID', summary: 'Give back the addresses of a host gone for good', flags: [] },
  daemon: {
    usage: 'cnm daemon [OPTIONS]',
    summary: 'Serve the network part of the Docker Engine API (SIGTERM/SIGINT: finish the requests in flight, then stop; SIGHUP: reopen the log file)',
    flags: [
      ['', 'socket', 'string', 'Unix socket to listen on (default "/run/cnm.sock")'],
      ['', 'log-file', 'string', 'Append the log lines to this file instead of stderr; SIGHUP reopens it (for log rotation)'],
    ],
  },
  events: {
    usage: 'cnm events [OPTIONS]',
    summary: "Get real time events from the host's networks (made by any cnm process)",
    flags: [
      ['f', 'filter', 'filter', 'Filter output based on conditions provided (type, event, network, container, scope, label)'],
      ['', 'format', 'string', 'json (one object per line, as "{{json .}}")'],
      ['', 'since', 'string', 'Show all events created since timestamp (unix seconds, RFC 3339 or a duration)'],
      ['', 'until', 'string', 'Stream events until this timestamp'],
    ],
  },
  demo: { usage: 'cnm demo [OPTIONS]', summary: 'A self-contained walk-through in an isolated namespace', flags: [['', 'hosts', 'int', 'A cluster of N hosts on an etcd of its own (1 to 9)']] },
  completion: { usage: 'cnm completion bash|zsh|fish', summary: 'Print a shell completion script (e.g., source <(cnm completion bash))', flags: [] },
};

/** The subcommands of a command group, in the order of HELP. */
export function subcommands(group: string): string[] {
  return Object.keys(HELP)
    .filter((k) => k.startsWith(`${group} `))
    .map((k) => k.slice(group.length + 1));
}

/** docker's help layout: usage, summary, flags aligned. */
export function renderHelp(h: CommandHelp): string {
  const cells = h.flags.map(([s, l, type, desc]) => [`${s ? `-${s}, ` : '    '}--${l}${type ? ` ${type}` : ''}`, desc] as const);
  const width = Math.max(0, ...cells.map(([c]) => c.length));
  const flags = cells.length ? `\n\nOptions:\n${cells.map(([c, d]) => `  ${c.padEnd(width)}   ${d}`).join('\n')}` : '';
  return `Usage:  ${h.usage}\n\n${h.summary}${flags}`;
}
