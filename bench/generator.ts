// Runs one load measurement against a URL with wrk (when found) or bench/load.ts.
import { rmSync } from 'node:fs'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnChild } from './children.ts'
import { formatHeaderLine, type HeaderLine } from './header-file.ts'
import { seconds, type LoadResult } from './stats.ts'
import { parseSent, parseWrk, wrkArgs } from './wrk.ts'

export interface LoadSettings {
  wrk: string | null // the wrk binary, or null for bench/load.ts
  prefix: string[] // e.g. taskset -c 0
  connections: number
  duration: string
  warmup: string
  maxRequests: string // bench/load.ts only
  headers: Record<string, string>
}

/** Credentials that differ per request (replay protection, or to miss a cache), as header lines. */
export interface Credentials {
  /**
   * Lines for a run of `count` requests. Not repeatable: none sent before, and a line sent
   * twice is refused (a replayed signature). Repeatable: as many as the source wants; the
   * generator cycles through them.
   */
  take(count: number): Promise<HeaderLine[]>
  /** How many requests of the run went out with the lines last taken. */
  spent(count: number): void
  readonly repeatable: boolean
}

/** What one row adds to the common load settings. */
export interface RowLoad {
  headers: Record<string, string>
  credentials?: Credentials
  // Sizing the header files of credentials that must not repeat: a run gets lines for twice
  // this row's best req/s so far, and at least for `guessRps` (gateway-plain's best: a route
  // that checks credentials is not faster than one that does not).
  peakRps?: number
  guessRps: number
}

export interface Measured {
  result: LoadResult
  // The row's best req/s so far, this warm-up and run included.
  peakRps: number
  // Requests of the measured run that sent a line of the header file again, which credentials
  // that are not repeatable refuse (the file was too short).
  reused: number
}

const root = join(import.meta.dir, '..')
// The first warm-up runs on a cold route, and a shared machine drifts.
const HEADROOM = 2
let headerDir: string | undefined

async function run(cmd: string[], limitSeconds: number): Promise<string> {
  const child = spawnChild(cmd, root)
  const killer = setTimeout(() => child.kill('SIGKILL'), (limitSeconds + 15) * 1000)
  const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited])
  clearTimeout(killer)
  if (code !== 0) throw new Error(`load generator exited with ${code}: ${(err || out).trim()}`)
  return out
}

export function generatorName(s: LoadSettings): string {
  return s.wrk ? `wrk (${s.wrk}, 1 thread)` : 'bench/load.ts (wrk not found)'
}

// A header file for `secs` seconds of the row's load, written before the generator starts.
async function headerFile(
  row: RowLoad,
  s: LoadSettings,
  secs: number,
  peak: number | undefined,
): Promise<{ path: string; lines: number } | undefined> {
  if (!row.credentials) return undefined
  const rps = Math.max((peak ?? 0) * HEADROOM, row.guessRps)
  const lines = Math.ceil(rps * secs) + 2 * s.connections
  const taken = await row.credentials.take(lines)
  if (taken.length === 0) throw new Error('the credentials gave no header lines')
  if (!headerDir) {
    const dir = await mkdtemp(join(tmpdir(), 'portcullis-bench-headers-'))
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
    headerDir = dir
  }
  const path = join(headerDir, 'headers.txt')
  await writeFile(path, `${taken.map(formatHeaderLine).join('\n')}\n`)
  return { path, lines: taken.length }
}

// Settles the lines a run took; returns how many requests reused one.
function settle(row: RowLoad, file: { lines: number } | undefined, sent: number | null | undefined): number {
  if (!file || !row.credentials) return 0
  // No count from the generator: assume every line went out.
  const n = sent ?? file.lines
  row.credentials.spent(n)
  return row.credentials.repeatable ? 0 : Math.max(0, n - file.lines)
}

export async function measure(url: string, s: LoadSettings, row: RowLoad = { headers: {}, guessRps: 0 }): Promise<Measured> {
  const headers = { ...s.headers, ...row.headers }
  let peak = row.peakRps
  if (s.wrk) {
    const wrk = s.wrk
    const once = async (secs: number): Promise<[LoadResult, number]> => {
      const file = await headerFile(row, s, Math.max(1, Math.round(secs)), peak)
      const out = await run([...s.prefix, ...wrkArgs(wrk, url, s.connections, secs, headers, file?.path)], secs)
      const result = parseWrk(out)
      peak = Math.max(peak ?? 0, result.rps)
      return [result, settle(row, file, parseSent(out))]
    }
    const warm = seconds(s.warmup)
    if (warm > 0) await once(warm)
    const [result, reused] = await once(seconds(s.duration))
    return { result, peakRps: peak ?? result.rps, reused }
  }
  const file = await headerFile(row, s, seconds(s.warmup) + seconds(s.duration), peak)
  const args = ['--url', url, '--connections', String(s.connections), '--duration', s.duration, '--warmup', s.warmup, '--max-requests', s.maxRequests]
  for (const [name, value] of Object.entries(headers)) args.push('--header', `${name}: ${value}`)
  if (file) args.push('--header-file', file.path)
  const out = await run([...s.prefix, process.execPath, 'bench/load.ts', ...args], seconds(s.warmup) + seconds(s.duration))
  const parsed = JSON.parse(out.trim().split('\n').at(-1) ?? '') as LoadResult & { sent?: number }
  const { sent, ...result } = parsed
  // load.ts warms up in the same run: a reused line may have gone out in either part.
  return { result, peakRps: Math.max(peak ?? 0, result.rps), reused: settle(row, file, sent) }
}
