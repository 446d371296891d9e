// `gateway directives`: the Markdown table of every directive, from the registry (the README embeds it).
import { directives } from '../directives/index.ts'

const cell = (s: string) => s.replaceAll('|', '\\|')

export function directiveTable(): string {
  const rows = directives.map(
    (d) => `| \`${cell(d.usage)}\` | ${d.stage}${d.terminal ? ' (terminal)' : ''} | ${d.places.join(', ')} | ${cell(d.summary)} |`,
  )
  return ['| directive | stage | where | what it does |', '|---|---|---|---|', ...rows].join('\n')
}
