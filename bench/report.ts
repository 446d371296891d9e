import { cpus } from 'node:os'
import { median, type LoadResult } from './stats.ts'

export const ms = (n: number) => n.toFixed(2)
export const signed = (n: number) => `${n >= 0 ? '+' : ''}${ms(n)}`

export function machineLine(): string {
  const cores = cpus()
  return `machine: nproc ${cores.length}, ${cores[0]?.model.trim() ?? 'unknown cpu'}, ${process.platform}-${process.arch}, bun ${Bun.version}`
}

/**
 * target, req/s, p50, p99, then req/s relative to nginx (only when it has a row) and to
 * the bare fetch proxy, the p99 added over the bare fetch proxy, and req/s relative to
 * gateway-plain (only when it has a row: what a route's directives cost).
 */
export function table(rows: [string, LoadResult][]): string {
  const nginx = rows.find(([name]) => name === 'nginx')?.[1]
  const bare = rows.find(([name]) => name === 'bare-fetch')?.[1]
  const plain = rows.find(([name]) => name === 'gateway-plain')?.[1]
  const head = [
    'target',
    'req/s',
    'p50 ms',
    'p99 ms',
    ...(nginx ? ['req/s vs nginx'] : []),
    'req/s vs bare-fetch',
    'p99 added vs bare-fetch',
    ...(plain ? ['req/s vs gateway-plain'] : []),
  ]
  const body = rows.map(([name, r]) => [
    name,
    r.rps.toFixed(0),
    ms(r.p50),
    ms(r.p99),
    ...(nginx ? [`${(r.rps / nginx.rps).toFixed(2)}x`] : []),
    bare ? `${(r.rps / bare.rps).toFixed(2)}x` : '-',
    bare ? `${signed(r.p99 - bare.p99)} ms` : '-',
    ...(plain ? [`${(r.rps / plain.rps).toFixed(2)}x`] : []),
  ])
  return formatTable(head, body)
}

/** Columns padded to their widest cell: the first left-aligned, the rest right-aligned. */
export function formatTable(head: string[], body: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]?.length ?? 0)))
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ')
  return [line(head), ...body.map(line)].join('\n')
}

export function errorRate(r: LoadResult): number {
  return r.requests === 0 ? 1 : r.errors / r.requests
}

/**
 * Each row's req/s against its baseline's run of the same round (the rows of a round run one
 * after the other, so a machine's slow drifts cancel out of the pair): the median of the
 * per-round ratios, and their range. Pairs with a row that did not run are left out.
 */
export function pairedRatios(runs: ReadonlyMap<string, readonly LoadResult[]>, pairs: readonly [string, string][]): string | null {
  const parts = pairs.flatMap(([row, base]) => {
    const a = runs.get(row) ?? []
    const b = runs.get(base) ?? []
    const n = Math.min(a.length, b.length)
    if (n === 0) return []
    const ratios = Array.from({ length: n }, (_, i) => a[i]!.rps / b[i]!.rps)
    return [`${row}/${base} ${median(ratios).toFixed(2)}x (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`]
  })
  if (parts.length === 0) return null
  const rounds = Math.max(...pairs.map(([row]) => runs.get(row)?.length ?? 0))
  return `req/s paired by round (median of ${rounds} rounds, range): ${parts.join(', ')}`
}
