// Starts what the bench measures: the upstream, the bare Bun proxies and the gateway.
import { join } from 'node:path'
import type { Subprocess } from 'bun'
import { freePorts, spawnChild, stop, watchChild } from './children.ts'

const root = join(import.meta.dir, '..')
const READY = 'listening on http://'

export function prefixed(name: string, limit: number): (line: string) => void {
  let seen = 0
  return (line) => {
    seen++
    if (seen <= limit) console.error(`[${name}] ${line}`)
    else if (seen === limit + 1) console.error(`[${name}] (more stderr not shown)`)
  }
}

/** A bench script that prints `listening on http://…` (upstream.ts, bare-*-proxy.ts); resolves to that URL. */
export async function startScript(name: string, script: string[], prefix: string[], timeoutMs: number): Promise<string> {
  const child = spawnChild([...prefix, process.execPath, ...script, '--exit-on-stdin-close'], root)
  const watched = watchChild(child, (l) => l.includes(READY), timeoutMs, prefixed(name, 20))
  let line: string
  try {
    line = await watched.ready
  } catch (err) {
    throw new Error(`${name}: ${(err as Error).message}; its last output:\n  ${watched.tail.join('\n  ')}`)
  }
  const url = /http:\/\/\S+/.exec(line)?.[0]
  if (!url) throw new Error(`${name}: no address in "${line}"`)
  return url
}

export interface Gateway {
  url: string
  child: Subprocess
}

/** The gateway on the bench policies (bench/policy.ts writes them), optionally with --workers and `extra` arguments (e.g. --redis). */
export async function startGateway(
  name: string,
  policies: string,
  workers: number,
  prefix: string[],
  timeoutMs: number,
  extra: string[] = [],
): Promise<Gateway> {
  const [port, adminPort] = freePorts(2)
  const args = ['--policies', policies, '--host', '127.0.0.1', '--port', String(port), '--admin-port', String(adminPort), '--no-watch']
  if (workers > 1) args.push('--workers', String(workers))
  args.push(...extra)
  const child = spawnChild([...prefix, process.execPath, 'src/cli/main.ts', ...args], root)
  const watched = watchChild(child, (l) => l.includes(READY), timeoutMs, prefixed(name, 20))
  try {
    await watched.ready
  } catch (err) {
    throw new Error(`${name}: ${(err as Error).message}; its last output:\n  ${watched.tail.join('\n  ')}`)
  }
  return { url: `http://127.0.0.1:${port}`, child }
}

/** SIGTERM and a warning unless it exits cleanly within 5 s. */
export async function stopGateway(name: string, gateway: Gateway): Promise<void> {
  const code = await stop(gateway.child, 5_000)
  if (code !== 0) console.error(`WARNING ${name}: ${code === null ? 'still running 5 s after SIGTERM' : `exited with ${code} after SIGTERM`}`)
}
