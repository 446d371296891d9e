// wrk as the load generator: one thread, N connections, its --latency report parsed
// into a LoadResult. A separate wrk run serves as the warm-up (wrk has none of its own).
import type { LoadResult } from './stats.ts'

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 }

function durationMs(text: string | undefined): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text ?? '')
  return m?.[1] && m[2] ? Number(m[1]) * (UNIT_MS[m[2]] ?? Number.NaN) : Number.NaN
}

/** Parses `wrk --latency` output; throws when the essential lines are missing. */
export function parseWrk(out: string): LoadResult {
  const percent = (p: string) => durationMs(new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out)?.[1])
  const total = /^\s*(\d+) requests in (\S+),/m.exec(out)
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(out)
  if (!total?.[1] || !rps?.[1]) throw new Error(`cannot read the wrk report:\n${out}`)
  const errorKinds: Record<string, number> = {}
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0)
  if (non2xx) errorKinds['status >= 400'] = non2xx
  const socket = /Socket errors: (.*)/.exec(out)?.[1] ?? ''
  for (const [, kind, n] of socket.matchAll(/(\w+) (\d+)/g)) if (kind && Number(n)) errorKinds[kind] = Number(n)
  return {
    requests: Number(total[1]),
    errors: Object.values(errorKinds).reduce((a, b) => a + b, 0),
    errorKinds,
    elapsedMs: durationMs(total[2]),
    rps: Number(rps[1]),
    p50: percent('50'),
    p90: percent('90'),
    p99: percent('99'),
    max: durationMs(/^\s+Latency\s+\S+\s+\S+\s+(\S+)/m.exec(out)?.[1]),
  }
}

/** How many requests bench/header-cycle.lua handed out (it prints `header-cycle: sent S of N`), or null without it. */
export function parseSent(out: string): number | null {
  const m = /^header-cycle: sent (\d+) of \d+$/m.exec(out)
  return m?.[1] ? Number(m[1]) : null
}

/**
 * The wrk command line. With `headerFile`, bench/header-cycle.lua sends each request with the
 * next line of that file (one thread: a second would cycle through the same lines).
 */
export function wrkArgs(
  binary: string,
  url: string,
  connections: number,
  seconds: number,
  headers: Record<string, string>,
  headerFile?: string,
): string[] {
  const args = [binary, '-t1', `-c${connections}`, `-d${Math.max(1, Math.round(seconds))}s`, '--latency', '--timeout', '5s']
  for (const [name, value] of Object.entries(headers)) args.push('-H', `${name}: ${value}`)
  if (headerFile) return [...args, '-s', 'bench/header-cycle.lua', url, '--', headerFile]
  return [...args, url]
}
