export interface LoadResult {
  requests: number
  errors: number
  errorKinds: Record<string, number>
  elapsedMs: number
  rps: number
  p50: number
  p90: number
  p99: number
  max: number
}

/** "10", "10s", "1.5" → seconds; "500ms" → 0.5. */
export function seconds(text: string): number {
  const ms = /^([\d.]+)ms$/.exec(text)
  const value = ms?.[1] ? Number(ms[1]) / 1000 : Number(text.replace(/s$/, ''))
  if (!Number.isFinite(value) || value < 0) throw new Error(`not a duration: ${text}`)
  return value
}

/** Nearest-rank percentile of an ascending array. */
function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(Math.max(rank, 1), sorted.length) - 1] ?? Number.NaN
}

export function summarize(latencies: Float64Array, errors: number, errorKinds: Record<string, number>, elapsedMs: number): LoadResult {
  const sorted = Float64Array.from(latencies).sort()
  return {
    requests: sorted.length,
    errors,
    errorKinds,
    elapsedMs,
    rps: (sorted.length * 1000) / elapsedMs,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: percentile(sorted, 100),
  }
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? (sorted[mid] ?? Number.NaN) : ((sorted[mid - 1] ?? Number.NaN) + (sorted[mid] ?? Number.NaN)) / 2
}

/** Several runs of one row: the median of each rate and percentile; requests and errors summed. */
export function combine(runs: LoadResult[]): LoadResult {
  const errorKinds: Record<string, number> = {}
  for (const r of runs) for (const [kind, n] of Object.entries(r.errorKinds)) errorKinds[kind] = (errorKinds[kind] ?? 0) + n
  const sum = (pick: (r: LoadResult) => number) => runs.reduce((a, r) => a + pick(r), 0)
  const mid = (pick: (r: LoadResult) => number) => median(runs.map(pick))
  return {
    requests: sum((r) => r.requests),
    errors: sum((r) => r.errors),
    errorKinds,
    elapsedMs: sum((r) => r.elapsedMs),
    rps: mid((r) => r.rps),
    p50: mid((r) => r.p50),
    p90: mid((r) => r.p90),
    p99: mid((r) => r.p99),
    max: Math.max(...runs.map((r) => r.max)),
  }
}
