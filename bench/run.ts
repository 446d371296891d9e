// Benchmark: the same load straight at an upstream, then through the gateway.
// bun bench/run.ts [--connections 32] [--duration 10] [--warmup 1] [--max-requests 1000000]
//                  [--ready-timeout 15] [--direct-only]
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { spawnChild, stop, watchChild, freePorts } from './children.ts'
import { writeBenchPolicies, EXTRA_ROUTES } from './policy.ts'
import { probe } from './probe.ts'
import { comparison, errorRate, machineLine, table } from './report.ts'
import { seconds, type LoadResult } from './stats.ts'

const { values: opts } = parseArgs({
  options: {
    connections: { type: 'string', default: '32' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '1' },
    'max-requests': { type: 'string', default: '1000000' },
    'ready-timeout': { type: 'string', default: '15' },
    'direct-only': { type: 'boolean', default: false },
  },
  strict: true,
})

const root = join(import.meta.dir, '..')
const bun = process.execPath
const READY = 'listening on http://'
const MAX_ERROR_RATE = 0.01
const REQUEST_HEADERS = { 'X-Debug': '1', Accept: 'application/json' }

function prefixed(name: string, limit: number): (line: string) => void {
  let seen = 0
  return (line) => {
    seen++
    if (seen <= limit) console.error(`[${name}] ${line}`)
    else if (seen === limit + 1) console.error(`[${name}] (more stderr not shown)`)
  }
}

async function startUpstream(): Promise<string> {
  const child = spawnChild([bun, 'bench/upstream.ts', '--exit-on-stdin-close'], root)
  const line = await watchChild(child, (l) => l.includes(READY), 10_000, prefixed('upstream', 20)).ready
  const url = /http:\/\/\S+/.exec(line)?.[0]
  if (!url) throw new Error(`upstream: no address in "${line}"`)
  return url
}

async function load(url: string): Promise<LoadResult> {
  const args = ['--url', url, '--connections', opts.connections, '--duration', opts.duration]
  args.push('--warmup', opts.warmup, '--max-requests', opts['max-requests'])
  for (const [name, value] of Object.entries(REQUEST_HEADERS)) args.push('--header', `${name}: ${value}`)
  const child = spawnChild([bun, 'bench/load.ts', ...args], root)
  const limitMs = (seconds(opts.warmup) + seconds(opts.duration) + 15) * 1000
  const killer = setTimeout(() => child.kill('SIGKILL'), limitMs)
  const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited])
  clearTimeout(killer)
  if (code !== 0) throw new Error(`load generator exited with ${code}: ${err.trim()}`)
  return JSON.parse(out.trim().split('\n').at(-1) ?? '') as LoadResult
}

async function main(): Promise<number> {
  console.log(machineLine())
  console.log(`load: ${opts.connections} connections, ${opts.warmup}s warm-up, ${opts.duration}s measured\n`)
  const upstream = await startUpstream()
  const directUrl = `${upstream}/orders/1`
  const rows: [string, LoadResult][] = []

  if (opts['direct-only']) {
    rows.push(['direct', await load(directUrl)])
    console.log(table(rows))
    return rows.some(([, r]) => errorRate(r) > MAX_ERROR_RATE) ? 1 : 0
  }

  const policies = await writeBenchPolicies(join(root, 'bench/policies'), upstream)
  const [port, adminPort] = freePorts(2)
  const gateway = spawnChild(
    [bun, 'src/cli/main.ts', '--policies', policies, '--host', '127.0.0.1', '--port', String(port), '--admin-port', String(adminPort), '--no-watch'],
    root,
  )
  const watched = watchChild(gateway, (l) => l.includes(READY), seconds(opts['ready-timeout']) * 1000, prefixed('gateway', 20))
  try {
    await watched.ready
  } catch (err) {
    console.error(`gateway: ${(err as Error).message}; its last output:\n  ${watched.tail.join('\n  ')}`)
    return 1
  }
  console.log(`gateway ready on 127.0.0.1:${port} with ${EXTRA_ROUTES + 1} routes`)

  const gatewayBase = `http://127.0.0.1:${port}`
  const gatewayUrl = `${gatewayBase}/api/v1/orders/1`
  const problems = [
    ...(await probe(directUrl, gatewayUrl, REQUEST_HEADERS, true)),
    ...(await probe(`${upstream}/items/7`, `${gatewayBase}/svc${EXTRA_ROUTES - 1}/items/7`, REQUEST_HEADERS, false)),
  ]
  for (const p of problems) console.error(`WARNING gateway probe: ${p}`)

  rows.push(['direct', await load(directUrl)])
  rows.push(['gateway', await load(gatewayUrl)])

  const code = await stop(gateway, 5_000)
  if (code !== 0) console.error(`WARNING gateway: ${code === null ? 'still running 5 s after SIGTERM' : `exited with ${code} after SIGTERM`}`)

  console.log(`\n${table(rows)}\n`)
  const [direct, through] = rows.map(([, r]) => r)
  if (direct && through) console.log(comparison(direct, through))
  let status = 0
  for (const [name, r] of rows) {
    if (Object.keys(r.errorKinds).length > 0) console.log(`${name} errors: ${JSON.stringify(r.errorKinds)}`)
    if (errorRate(r) > MAX_ERROR_RATE) {
      console.error(`FAIL ${name}: ${(errorRate(r) * 100).toFixed(2)}% of requests failed (limit ${MAX_ERROR_RATE * 100}%)`)
      status = 1
    }
  }
  return status
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`bench: ${err instanceof Error ? err.message : String(err)}`)
    process.exit(1)
  },
)
