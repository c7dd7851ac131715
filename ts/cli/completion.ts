/**
 * `cnm completion bash|zsh|fish`: a completion script for the shell, from one
 * table of commands, subcommands and flags; network and sandbox names are asked
 * of `cnm … ls -q --no-trunc` where an argument names one.
 */
import { GLOBAL_OPTIONS, usage } from './args.js';
import { HELP } from './help.js';
import type { CliContext } from './context.js';

const GLOBAL = Object.keys(GLOBAL_OPTIONS).map((k) => `--${k}`);

/** command -> subcommand ('' for the command itself) -> its flags, from the help table */
export const COMMANDS: Record<string, Record<string, string[]>> = { version: { '': [] } };
for (const [key, h] of Object.entries(HELP)) {
  const [cmd, sub = ''] = key.split(' ') as [string, string?];
  (COMMANDS[cmd] ??= {})[sub] = h.flags.map(([, long]) => `--${long}`);
}
COMMANDS.completion = { bash: [], zsh: [], fish: [] };

/** Which argument kinds name what: network and sandbox names come from cnm itself. */
const NAMES: Record<string, 'network' | 'sandbox' | 'both'> = {
  'network inspect': 'network',
  'network rm': 'network',
  'network connect': 'both',
  'network disconnect': 'both',
  'sandbox inspect': 'sandbox',
  'sandbox rm': 'sandbox',
  port: 'sandbox',
};

function bash(): string {
  const cases = Object.entries(COMMANDS)
    .map(([cmd, subs]) => {
      const subNames = Object.keys(subs).filter((s) => s !== '');
      const inner = Object.entries(subs)
        .map(([sub, flags]) => {
          const names = NAMES[sub ? `${cmd} ${sub}` : cmd];
          const words = names === 'network' ? '$(__cnm_names network)' : names === 'sandbox' ? '$(__cnm_names sandbox)' : names === 'both' ? '$(__cnm_names network) $(__cnm_names sandbox)' : '';
          return `        ${sub === '' ? '""' : sub}) words="${flags.join(' ')} ${words}" ;;`;
        })
        .join('\n');
      return `    ${cmd})
      case "$sub" in
${inner}
        *) words="${subNames.join(' ')}" ;;
      esac ;;`;
    })
    .join('\n');
  return `# bash completion for cnm: source <(cnm completion bash)
__cnm_names() { cnm "$1" ls --format '{{.Name}}' 2>/dev/null; }
_cnm() {
  local cur=\${COMP_WORDS[COMP_CWORD]} cmd="" sub="" i words
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "\${COMP_WORDS[i]}" in
      -*) ;;
      *) if [ -z "$cmd" ]; then cmd=\${COMP_WORDS[i]}; elif [ -z "$sub" ]; then sub=\${COMP_WORDS[i]}; fi ;;
    esac
  done
  if [ -z "$cmd" ]; then
    words="${Object.keys(COMMANDS).join(' ')} ${GLOBAL.join(' ')}"
  else
    case "$cmd" in
${cases}
      *) words="" ;;
    esac
  fi
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _cnm cnm
`;
}

function zsh(): string {
  // zsh runs bash completion functions through bashcompinit
  return `#compdef cnm
# zsh completion for cnm: source <(cnm completion zsh)
autoload -U +X bashcompinit && bashcompinit
${bash()}`;
}

function fish(): string {
  const lines = ['# fish completion for cnm: cnm completion fish | source', 'complete -c cnm -f'];
  lines.push(`complete -c cnm -n __fish_use_subcommand -a "${Object.keys(COMMANDS).join(' ')}"`);
  for (const g of GLOBAL) lines.push(`complete -c cnm -l ${g.slice(2)}`);
  for (const [cmd, subs] of Object.entries(COMMANDS)) {
    const subNames = Object.keys(subs).filter((s) => s !== '');
    if (subNames.length) lines.push(`complete -c cnm -n "__fish_seen_subcommand_from ${cmd}; and not __fish_seen_subcommand_from ${subNames.join(' ')}" -a "${subNames.join(' ')}"`);
    for (const [sub, flags] of Object.entries(subs)) {
      const cond = sub ? `__fish_seen_subcommand_from ${cmd}; and __fish_seen_subcommand_from ${sub}` : `__fish_seen_subcommand_from ${cmd}`;
      for (const f of flags) lines.push(`complete -c cnm -n "${cond}" -l ${f.slice(2)}`);
      const names = NAMES[sub ? `${cmd} ${sub}` : cmd];
      if (names === 'network' || names === 'both') lines.push(`complete -c cnm -n "${cond}" -a "(cnm network ls --format '{{.Name}}' 2>/dev/null)"`);
      if (names === 'sandbox' || names === 'both') lines.push(`complete -c cnm -n "${cond}" -a "(cnm sandbox ls --format '{{.Name}}' 2>/dev/null)"`);
    }
  }
  return `${lines.join('\n')}\n`;
}

export function completionCommand(ctx: CliContext, args: string[]): number {
  const shell = args[0];
  if (args.length !== 1 || (shell !== 'bash' && shell !== 'zsh' && shell !== 'fish')) throw usage('usage: cnm completion bash|zsh|fish', shell);
  ctx.out(shell === 'bash' ? bash() : shell === 'zsh' ? zsh() : fish());
  return 0;
}
