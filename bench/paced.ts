// Latency at a paced load: every connection pauses after each answer (bench/paced.lua), so no
// proxy is saturated and the percentiles compare what each adds, not how long a queue grows.
// At saturation a closed-loop generator's latency is connections / throughput, so p99 there
// mostly restates req/s.
import { spawnChild } from './children.ts'
import { seconds, type LoadResult } from './stats.ts'
import { parseWrk, wrkArgs } from './wrk.ts'
import type { LoadSettings } from './generator.ts'
import { formatTable, ms, signed } from './report.ts'

// The rows whose request is the plain GET (no credentials to vary): these get a paced run.
export const PACED_ROWS = ['direct', 'nginx', 'bare-fetch', 'bare-socket', 'bare-raw', 'gateway-plain', 'gateway']

export async function paced(url: string, s: LoadSettings, pauseMs: number): Promise<LoadResult> {
  if (!s.wrk) throw new Error('paced runs need wrk')
  const secs = seconds(s.duration)
  const base = wrkArgs(s.wrk, url, s.connections, secs, s.headers)
  const cmd = [...s.prefix, ...base.slice(0, -1), '-s', 'bench/paced.lua', url, '--', String(pauseMs)]
  const child = spawnChild(cmd, `${import.meta.dir}/..`)
  const killer = setTimeout(() => child.kill('SIGKILL'), (secs + 15) * 1000)
  const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited])
  clearTimeout(killer)
  if (code !== 0) throw new Error(`wrk exited with ${code}: ${(err || out).trim()}`)
  return parseWrk(out)
}

/** target, req/s, p50, p90, p99, and the p50 and p99 added over the bare fetch and bare socket proxies. */
export function pacedTable(rows: [string, LoadResult][]): string {
  const fetchRow = rows.find(([name]) => name === 'bare-fetch')?.[1]
  const socketRow = rows.find(([name]) => name === 'bare-socket')?.[1]
  const head = ['target', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'p50 added vs bare-fetch', 'p99 added vs bare-fetch', 'p99 added vs bare-socket']
  const added = (base: LoadResult | undefined, pick: (r: LoadResult) => number, r: LoadResult) => (base ? `${signed(pick(r) - pick(base))} ms` : '-')
  const body = rows.map(([name, r]) => [
    name,
    r.rps.toFixed(0),
    ms(r.p50),
    ms(r.p90),
    ms(r.p99),
    added(fetchRow, (x) => x.p50, r),
    added(fetchRow, (x) => x.p99, r),
    added(socketRow, (x) => x.p99, r),
  ])
  return formatTable(head, body)
}
