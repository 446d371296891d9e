// `gateway routes`: the compiled route table as text, 100 columns wide (`--wide`: every
// directive of every stage on one line per route; `--json`: the admin API's GET /routes).
import { isAbsolute, relative, resolve } from 'node:path'
import { STAGES, type Stage } from '../runtime/context.ts'
import type { RouteRow } from '../runtime/program.ts'

// The terminal (the proxy stage) has its own column.
const COLUMN_STAGES = STAGES.filter((s) => s !== 'proxy')

const GAP = '  '

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(width(h), ...rows.map((row) => width(row[i]!))))
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c + ' '.repeat(widths[i]! - width(c)))
      .join(GAP)
      .trimEnd()
  return `${[line(head), ...rows.map(line)].join('\n')}\n`
}

export function wideRoutes(rows: RouteRow[]): string {
  return table(
    ['METHOD', 'HOST', 'PATTERN', 'STAGES', 'TERMINAL', 'SOURCE'],
    rows.map((r) => [
      r.method,
      r.host ?? '*',
      r.pattern,
      COLUMN_STAGES.map((s) => `${s}: ${r.stages[s].join(', ') || '-'}`).join('; '),
      // Terminals in the order they are tried: those in `when` blocks first, then the route's own.
      r.stages.proxy.join(', ') || r.terminal,
      r.location,
    ]),
  )
}

// The same shape as the admin API's GET /routes.
export function jsonRoutes(version: number, rows: RouteRow[]): string {
  return `${JSON.stringify({ version, routes: rows }, null, 2)}\n`
}

// The compact table fits this many columns whatever the policies hold.
export const COMPACT_WIDTH = 100

// Counts of directives per stage under a header that names the stages.
const COUNTS: readonly [Stage, string][] = [
  ['access', 'ACC'],
  ['rewrite', 'RW'],
  ['response', 'RSP'],
  ['log', 'LOG'],
]
const COUNTS_HEAD = COUNTS.map(([, h]) => h).join(' ')

// Widths are in code points: patterns and hosts are ASCII in practice, file names may not be.
const width = (s: string) => [...s].length

// Cut at the end (`proxy split 90% ord…`), in the middle (`/api/v1/…/refunds`) or at the start
// (`…/nested/file.policy:12`), marked by an ellipsis.
function cut(s: string, w: number, where: 'end' | 'middle' | 'start'): string {
  const chars = [...s]
  if (chars.length <= w) return s
  if (w <= 1) return '…'.slice(0, w)
  if (where === 'end') return `${chars.slice(0, w - 1).join('')}…`
  if (where === 'start') return `…${chars.slice(chars.length - (w - 1)).join('')}`
  const head = Math.ceil((w - 1) / 2)
  return `${chars.slice(0, head).join('')}…${chars.slice(chars.length - (w - 1 - head)).join('')}`
}

// `file:line` from a location `path:line:col`, the path relative to the policy directory BASE.
function sourceOf(location: string, base: string): string {
  const m = /^(.*):(\d+):\d+$/.exec(location)
  if (!m) return location
  const rel = relative(base, resolve(m[1]!))
  const path = rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : m[1]!
  // Every file is a .policy file: the suffix is left out to leave room for the pattern.
  return `${path.replace(/\.policy$/, '')}:${m[2]}`
}

// The route's own terminal, and how many of its `when` blocks have one (they are tried first);
// a route whose every terminal is in a `when` block shows them without their conditions.
function terminalOf(r: RouteRow): { own: string; more: string } {
  const guard = ' (when '
  const own = r.stages.proxy.filter((t) => !t.includes(guard)).at(-1)
  const guarded = r.stages.proxy.filter((t) => t.includes(guard))
  if (own === undefined && guarded.length === 0) return { own: r.terminal || '-', more: '' }
  if (own === undefined) return { own: `when: ${[...new Set(guarded.map((t) => t.slice(0, t.indexOf(guard))))].join(', ')}`, more: '' }
  return { own, more: guarded.length ? ` +${guarded.length} when` : '' }
}

// When the table is too wide, columns give up room in this order, each down to its floor: the
// terminal, the method list, the source, the pattern. With every floor reached the table is 98
// columns wide, so it always fits.
const SHRINK: readonly ['method' | 'pattern' | 'source' | 'terminal', number][] = [
  ['terminal', 20],
  ['method', 12],
  ['source', 20],
  ['pattern', 24],
]

// One line per route within COMPACT_WIDTH columns: method, host and pattern, file:line (relative
// to BASE, the policy directory), directives per stage, terminal. Long cells are cut with `…`.
export function compactRoutes(rows: RouteRow[], base: string): string {
  const cells = rows.map((r) => ({
    method: r.method,
    pattern: r.host ? `${r.host}${r.pattern}` : r.pattern,
    source: sourceOf(r.location, base),
    counts: COUNTS.map(([stage, h]) => String(r.stages[stage].length || '-').padStart(h.length)).join(' '),
    terminal: terminalOf(r),
  }))
  const natural = (head: string, pick: (c: (typeof cells)[number]) => string) => Math.max(width(head), ...cells.map((c) => width(pick(c))))
  const w = {
    method: natural('METHOD', (c) => c.method),
    pattern: natural('PATTERN', (c) => c.pattern),
    source: natural('SOURCE', (c) => c.source),
    terminal: natural('TERMINAL', (c) => c.terminal.own + c.terminal.more),
  }
  const fixed = width(COUNTS_HEAD) + 4 * GAP.length
  for (const [column, floor] of SHRINK) {
    const over = fixed + w.method + w.pattern + w.source + w.terminal - COMPACT_WIDTH
    if (over <= 0) break
    w[column] -= Math.min(over, Math.max(0, w[column] - floor))
  }
  const { method, pattern, source, terminal } = w
  const terminalCell = (t: { own: string; more: string }) =>
    width(t.own) + width(t.more) <= terminal ? t.own + t.more : cut(t.own, Math.max(1, terminal - width(t.more)), 'end') + t.more
  return table(
    ['METHOD', 'PATTERN', 'SOURCE', COUNTS_HEAD, 'TERMINAL'],
    cells.map((c) => [
      cut(c.method, method, 'end'),
      cut(c.pattern, pattern, 'middle'),
      cut(c.source, source, 'start'),
      c.counts,
      cut(terminalCell(c.terminal), terminal, 'end'),
    ]),
  )
}
