// `gateway routes`: the compiled route table as text.
import { STAGES } from '../runtime/context.ts'
import type { RouteRow } from '../runtime/program.ts'

// The terminal (the proxy stage) has its own column.
const COLUMN_STAGES = STAGES.filter((s) => s !== 'proxy')

export function printRoutes(rows: RouteRow[]): string {
  const table = rows.map((r) => [
    r.method,
    r.host ?? '*',
    r.pattern,
    COLUMN_STAGES.map((s) => `${s}: ${r.stages[s].join(', ') || '-'}`).join('; '),
    // Terminals in the order they are tried: those in `when` blocks first, then the route's own.
    r.stages.proxy.join(', ') || r.terminal,
    r.location,
  ])
  const head = ['METHOD', 'HOST', 'PATTERN', 'STAGES', 'TERMINAL', 'SOURCE']
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)))
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd()
  return `${[line(head), ...table.map(line)].join('\n')}\n`
}
