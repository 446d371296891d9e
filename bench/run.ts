// Benchmark: the same small GET straight at the upstream and through each proxy, side by side.
// See bench/README.md; `bun bench/run.ts --help` for the flags.
import { freePorts } from './children.ts'
import { generatorName, measure, type LoadSettings } from './generator.ts'
import { findNginx, startNginx } from './nginx.ts'
import { parseOptions, USAGE, type Row } from './options.ts'
import { choosePinning } from './pinning.ts'
import { EXTRA_ROUTES } from './policy.ts'
import { probe } from './probe.ts'
import { errorRate, machineLine, table } from './report.ts'
import { combine, seconds, type LoadResult } from './stats.ts'
import { startGateway, startScript, stopGateway, type Gateway } from './targets.ts'

const MAX_ERROR_RATE = 0.01
const REQUEST_HEADERS = { 'X-Debug': '1', Accept: 'application/json' }
const ORDER = '/orders/1'
// The path each row requests, and whether its route applies the header directives.
const PATHS: Record<Row, [string, boolean]> = {
  direct: [ORDER, false],
  nginx: [ORDER, false],
  'bare-fetch': [ORDER, false],
  'bare-socket': [ORDER, false],
  'bare-raw': [ORDER, false],
  'gateway-plain': [`/plain${ORDER}`, false],
  gateway: [`/api/v1${ORDER}`, true],
  'gateway-workers': [`/api/v1${ORDER}`, true],
}

if (process.argv.includes('--help')) {
  console.log(USAGE)
  process.exit(0)
}

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2))
  const pin = choosePinning(opts.pin)
  const wrk = opts.load === 'bun' ? null : Bun.which('wrk')
  if (opts.load === 'wrk' && !wrk) throw new Error('--load wrk: wrk not found on PATH')
  const load: LoadSettings = {
    wrk,
    prefix: pin.side,
    connections: opts.connections,
    duration: opts.duration,
    warmup: opts.warmup,
    maxRequests: opts.maxRequests,
    headers: REQUEST_HEADERS,
  }
  const readyMs = seconds(opts.readyTimeout) * 1000
  console.log(machineLine())
  console.log(pin.describe(opts.rows.includes('gateway-workers') ? opts.workers : 1))
  console.log(
    `load: ${generatorName(load)}, ${opts.connections} connections, ${opts.warmup}s warm-up, ${opts.duration}s measured, ${opts.repeat} run(s) per row\n`,
  )

  const upstream = await startScript('upstream', ['bench/upstream.ts'], pin.side, 10_000)
  const bases = new Map<Row, string>([['direct', upstream]])
  const gateways: [string, Gateway][] = []
  const notes: string[] = []
  for (const row of opts.rows) {
    if (row === 'nginx') {
      const binary = findNginx()
      if (!binary) {
        notes.push('nginx: not found on PATH or at /usr/sbin/nginx; row skipped')
        continue
      }
      const [port = 0] = freePorts(1)
      await startNginx(binary, pin.proxy(), port, upstream, ORDER, readyMs)
      bases.set(row, `http://127.0.0.1:${port}`)
    } else if (row === 'bare-fetch' || row === 'bare-socket' || row === 'bare-raw') {
      bases.set(row, await startScript(row, [`bench/${row}-proxy.ts`, '--upstream', upstream], pin.proxy(), readyMs))
    } else if (row === 'gateway-plain' || row === 'gateway') {
      if (!gateways.some(([name]) => name === 'gateway')) gateways.push(['gateway', await startGateway('gateway', upstream, 1, pin.proxy(), readyMs)])
      bases.set(row, gateways.find(([name]) => name === 'gateway')?.[1].url ?? '')
    } else if (row === 'gateway-workers') {
      const name = `gateway --workers ${opts.workers}`
      const gw = await startGateway(name, upstream, opts.workers, pin.proxy(opts.workers), readyMs)
      gateways.push([name, gw])
      bases.set(row, gw.url)
    }
    const what = row === 'gateway-workers' ? `${row} (--workers ${opts.workers})` : row
    if (row !== 'direct' && bases.has(row)) console.log(`${what} ready on ${bases.get(row)}`)
  }

  const targets = opts.rows.filter((row) => bases.has(row))
  for (const row of targets) {
    const [path, transformed] = PATHS[row]
    const base = bases.get(row) ?? ''
    const problems = row === 'direct' ? [] : await probe(`${upstream}${ORDER}`, `${base}${path}`, REQUEST_HEADERS, transformed)
    if (transformed) problems.push(...(await probe(`${upstream}/items/7`, `${base}/svc${EXTRA_ROUTES - 1}/items/7`, REQUEST_HEADERS, false)))
    for (const p of problems) console.error(`WARNING ${row} probe: ${p}`)
  }

  const runs = new Map<Row, LoadResult[]>(targets.map((row) => [row, []]))
  for (let i = 0; i < opts.repeat; i++) {
    // Round-robin, so slow drifts of a shared machine spread over all rows.
    for (const row of targets) runs.get(row)?.push(await measure(`${bases.get(row)}${PATHS[row][0]}`, load))
  }
  for (const [name, gw] of gateways) await stopGateway(name, gw)

  const rows: [string, LoadResult][] = targets.map((row) => [row, combine(runs.get(row) ?? [])])
  console.log(`\n${table(rows)}\n`)
  for (const note of notes) console.log(note)
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
