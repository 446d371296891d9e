import { cpus } from 'node:os'
import type { LoadResult } from './stats.ts'

const ms = (n: number) => n.toFixed(2)

export function machineLine(): string {
  const cores = cpus()
  return `machine: nproc ${cores.length}, ${cores[0]?.model.trim() ?? 'unknown cpu'}, ${process.platform}-${process.arch}, bun ${Bun.version}`
}

export function table(rows: [string, LoadResult][]): string {
  const head = ['target', 'requests', 'errors', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms']
  const body = rows.map(([name, r]) => [name, String(r.requests), String(r.errors), r.rps.toFixed(0), ms(r.p50), ms(r.p90), ms(r.p99), ms(r.max)])
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]?.length ?? 0)))
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ')
  return [line(head), ...body.map(line)].join('\n')
}

export function comparison(direct: LoadResult, gateway: LoadResult): string {
  return [
    `gateway/direct req/s: ${(gateway.rps / direct.rps).toFixed(2)}x`,
    `added latency: p50 +${ms(gateway.p50 - direct.p50)} ms, p99 +${ms(gateway.p99 - direct.p99)} ms`,
  ].join('\n')
}

export function errorRate(r: LoadResult): number {
  return r.requests === 0 ? 1 : r.errors / r.requests
}
