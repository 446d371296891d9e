// The gateway's CPU time per request, per row: on a machine shared with other work the
// throughput of one run drifts, while the CPU a request costs the saturated proxy core does
// much less. Read from /proc around each run of the rows that compare it.
import { readFileSync } from 'node:fs'
import type { Row } from './options.ts'

let ticksPerSecond: number | null = null
/** CPU seconds (user + system) a process has used, from /proc/PID/stat; null without /proc. */
export function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ') // from field 3 (state) on
    ticksPerSecond ??= Number(Bun.spawnSync(['getconf', 'CLK_TCK']).stdout.toString().trim()) || 100
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond
  } catch {
    return null
  }
}

export class CpuTally {
  private readonly cpu = new Map<Row, { seconds: number; requests: number }>()

  // `warmShare` = (warm-up + measured) / measured seconds: the warm-up's requests are not
  // counted but its CPU time is, so requests are scaled by it.
  constructor(
    private readonly rows: ReadonlySet<Row>,
    private readonly warmShare: number,
  ) {}

  /** Runs one measurement, adding up the gateway process's CPU time when the row is tallied. */
  async around<T extends { result: { requests: number } }>(row: Row, pid: number | undefined, run: () => Promise<T>): Promise<T> {
    const before = pid !== undefined && this.rows.has(row) ? cpuSeconds(pid) : null
    const m = await run()
    const after = before === null ? null : cpuSeconds(pid!)
    if (before !== null && after !== null) {
      const c = this.cpu.get(row) ?? { seconds: 0, requests: 0 }
      c.seconds += after - before
      c.requests += m.result.requests * this.warmShare
      this.cpu.set(row, c)
    }
    return m
  }

  /** µs of gateway CPU per request over every run of the row, or null when it was not measured. */
  perRequest(row: Row): number | null {
    const c = this.cpu.get(row)
    return c && c.requests > 0 ? (c.seconds / c.requests) * 1e6 : null
  }

  get measured(): Row[] {
    return [...this.cpu.keys()]
  }
}
