/** The usage texts of the commands, apart from their code: help loads nothing else. */

export const NETWORK_USAGE = `Usage: cnm network COMMAND

Commands:
  create [--driver bridge|macvlan|overlay|routed|PLUGIN] [--subnet CIDR]... [--gateway IP]... [--ip-range CIDR]...
         [--aux-address name=IP]... [--internal] [--attachable] [--ipv4=false] [--ipv6]
         [--opt k=v]... [--label k=v]...
         [--mtu N] [--ipam-driver NAME] [--ipam-opt k=v]... NAME
         (macvlan: -o parent=IF[.VLAN] [-o macvlan_mode=bridge|private|vepa|passthru];
          routed: a cluster network, -o block_size=N for each host's block, default 24)
  ls [--format table|json|TEMPLATE] [-q] [--no-trunc] [-f k=v]...   (filters name, id, driver, label, type, scope, dangling)
  inspect [-f TEMPLATE] NAME|ID...
  rm NAME|ID...
  prune [-f] [--filter until=T|label=L]...   remove networks no sandbox uses
  connect [--ip IP] [--ip6 IP] [--alias A]... [--link NAME[:ALIAS]]... [-p SPEC]...
          [--mac-address MAC] [--link-local-ip IP]... [--driver-opt k=v]... NETWORK SANDBOX
  disconnect NETWORK SANDBOX`;

export const SANDBOX_USAGE = `Usage: cnm sandbox COMMAND

Commands:
  create [--net NETWORK|host|none|container:NAME] [--ip IP] [--ip6 IP] [--alias A]... [-p SPEC]...
         [--dns IP]... [--dns-search DOMAIN]... [--dns-option OPT]... [--add-host NAME:IP]... [--hostname NAME]
         [--link NAME[:ALIAS]]... [--expose PORT[/PROTO]]... [--mac-address MAC] [--link-local-ip IP]...
         [--netns-path /proc/PID/ns/net] NAME
  ls [--format table|json|TEMPLATE] [-q] [--no-trunc] [-f k=v]...   (filters id, name, network)
  inspect [-f TEMPLATE] NAME|ID...
  rm NAME|ID...
  prune [-f] [--filter until=T]   remove sandboxes no process uses`;

export const EVENTS_USAGE = `Usage: cnm events [OPTIONS]

Get real time events from the host's networks (those made by any cnm process)

Options:
  -f, --filter k=v     filter output: type, event (create, connect, disconnect, destroy),
                       network, container, scope, label (repeatable)
      --format string  json (one object per line, as docker's '{{json .}}')
      --since string   show events since this time: unix seconds, RFC 3339, or a duration (10m)
      --until string   stream events until this time (same forms)`;
