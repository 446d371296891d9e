// Runs one load measurement against a URL with wrk (when found) or bench/load.ts.
import { join } from 'node:path'
import { spawnChild } from './children.ts'
import { seconds, type LoadResult } from './stats.ts'
import { parseWrk, wrkArgs } from './wrk.ts'

export interface LoadSettings {
  wrk: string | null // the wrk binary, or null for bench/load.ts
  prefix: string[] // e.g. taskset -c 0
  connections: number
  duration: string
  warmup: string
  maxRequests: string // bench/load.ts only
  headers: Record<string, string>
}

const root = join(import.meta.dir, '..')

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

export async function measure(url: string, s: LoadSettings): Promise<LoadResult> {
  if (s.wrk) {
    const warm = seconds(s.warmup)
    if (warm > 0) await run([...s.prefix, ...wrkArgs(s.wrk, url, s.connections, warm, s.headers)], warm)
    const out = await run([...s.prefix, ...wrkArgs(s.wrk, url, s.connections, seconds(s.duration), s.headers)], seconds(s.duration))
    return parseWrk(out)
  }
  const args = ['--url', url, '--connections', String(s.connections), '--duration', s.duration, '--warmup', s.warmup, '--max-requests', s.maxRequests]
  for (const [name, value] of Object.entries(s.headers)) args.push('--header', `${name}: ${value}`)
  const out = await run([...s.prefix, process.execPath, 'bench/load.ts', ...args], seconds(s.warmup) + seconds(s.duration))
  return JSON.parse(out.trim().split('\n').at(-1) ?? '') as LoadResult
}
