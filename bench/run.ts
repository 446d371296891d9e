// Benchmark: the same small GET straight at the upstream and through each proxy, side by side.
// See bench/README.md; `bun bench/run.ts --help` for the flags.
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { freePorts } from './children.ts'
import { generatorName, measure, type Credentials, type LoadSettings } from './generator.ts'
import { availableRequires, IDENTITY, prepareIdentity, type IdentityBench, type Method } from './identity.ts'
import { findNginx, startNginx } from './nginx.ts'
import { parseOptions, USAGE, type Row } from './options.ts'
import { benchRedis } from './redis-server.ts'
import { choosePinning } from './pinning.ts'
import { EXTRA_ROUTES, writeBenchPolicies } from './policy.ts'
import { probe, probeRefusal } from './probe.ts'
import { errorRate, machineLine, pairedRatios, table } from './report.ts'
import { combine, seconds, type LoadResult } from './stats.ts'
import { startGateway, startScript, stopGateway, type Gateway } from './targets.ts'
import {
  ClientRing,
  deletePrefix,
  redisPrefix,
  redisProblem,
  THROTTLE_LIMIT,
  THROTTLE_ROUTE,
  THROTTLE_ROWS,
  throttleAvailable,
  throttleNotes,
  throttleRatios,
  throttlePolicy,
} from './throttle.ts'
import { sinkNotes, SINK_ROUTE, SINK_ROWS, sinkGatewayArgs, sinkPolicy, sinksAvailable, streamEntries } from './sinks.ts'
import { TRACING_CPU_ROWS, TRACING_ROWS, TracingBench } from './tracing.ts'
import { CpuTally } from './cpu.ts'
import { paced, PACED_ROWS, pacedTable } from './paced.ts'

const root = join(import.meta.dir, '..')
const MAX_ERROR_RATE = 0.01
const REQUEST_HEADERS: Record<string, string> = { 'X-Debug': '1', Accept: 'application/json' }
const ORDER = '/orders/1'
// Sizes the first header file of a row with per-request credentials when gateway-plain has not run.
const GUESS_RPS = 25_000
// The path each row requests, and whether its route applies the header directives.
// The identity rows' routes are written by bench/identity.ts.
const PATHS: Record<Row, [string, boolean]> = {
  direct: [ORDER, false],
  nginx: [ORDER, false],
  'bare-fetch': [ORDER, false],
  'bare-socket': [ORDER, false],
  'bare-raw': [ORDER, false],
  'gateway-plain': [`/plain${ORDER}`, false],
  gateway: [`/api/v1${ORDER}`, true],
  'gateway-key': [`/key${ORDER}`, false],
  'gateway-jwt-rs256-cached': [`/jwt-rs256${ORDER}`, false],
  'gateway-jwt-rs256': [`/jwt-rs256${ORDER}`, false],
  'gateway-jwt-es256-cached': [`/jwt-es256${ORDER}`, false],
  'gateway-jwt-es256': [`/jwt-es256${ORDER}`, false],
  'gateway-hmac': [`/hmac${ORDER}`, false],
  'gateway-plain-clients': [`/plain${ORDER}`, false],
  'gateway-throttle': [`${THROTTLE_ROUTE}${ORDER}`, false],
  'gateway-throttle-redis': [`${THROTTLE_ROUTE}${ORDER}`, false],
  'gateway-plain-clients-redis': [`/plain${ORDER}`, false],
  'gateway-sink-off': [`/plain${ORDER}`, false],
  'gateway-sink-redis': [`${SINK_ROUTE}${ORDER}`, false],
  'gateway-trace-100': [`/plain${ORDER}`, false],
  'gateway-trace-1': [`/plain${ORDER}`, false],
  'gateway-trace-down': [`/plain${ORDER}`, false],
  'gateway-workers': [`/api/v1${ORDER}`, true],
}

// The identity rows whose `require` method this gateway build has; a note for each other one.
function identityMethods(rows: Row[], notes: string[]): Set<Method> {
  const wanted = rows.filter((row) => IDENTITY[row])
  const methods = new Set<Method>()
  if (wanted.length === 0) return methods
  const have = availableRequires(root)
  for (const row of wanted) {
    const method = IDENTITY[row]?.method
    if (!method) continue
    if (have.has(method)) methods.add(method)
    else notes.push(`${row}: require ${method} is not available in this gateway build; row skipped`)
  }
  return methods
}

// The throttle rows this run can measure (`throttle` in this build; for the Redis row, a Redis
// answering at `redisUrl`); a note for each other one.
async function throttleRows(rows: Row[], notes: string[], redisUrl: string): Promise<Set<Row>> {
  const wanted = rows.filter((row) => THROTTLE_ROWS.includes(row))
  const runnable = new Set<Row>()
  if (wanted.length === 0) return runnable
  if (!throttleAvailable(root)) {
    for (const row of wanted) notes.push(`${row}: throttle is not available in this gateway build; row skipped`)
    return runnable
  }
  for (const row of wanted) {
    const problem = row === 'gateway-throttle-redis' ? await redisProblem(redisUrl) : null
    if (problem) notes.push(`${row}: no Redis answering on ${redisUrl} (${problem}); row skipped`)
    else runnable.add(row)
  }
  return runnable
}

// The sink rows this run can measure (`log to` in this build, a Redis answering at `redisUrl`).
async function sinkRows(rows: Row[], notes: string[], redisUrl: string): Promise<Set<Row>> {
  const wanted = rows.filter((row) => SINK_ROWS.includes(row))
  if (wanted.length === 0) return new Set()
  const problem = !sinksAvailable(root) ? 'log to is not available in this gateway build' : await redisProblem(redisUrl)
  if (!problem) return new Set(wanted)
  for (const row of wanted)
    notes.push(`${row}: ${problem.startsWith('log to') ? problem : `no Redis answering on ${redisUrl} (${problem})`}; row skipped`)
  return new Set()
}

// Run on every exit of main, errors included: the Redis rows' keys, then the bench's Redis.
const cleanups: (() => Promise<void>)[] = []
let closeRedis: (() => Promise<void>) | null = null
async function cleanUp(): Promise<void> {
  for (const task of cleanups.splice(0)) await task()
  await closeRedis?.()
  closeRedis = null
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
  const notes: string[] = []
  const methods = identityMethods(opts.rows, notes)
  // Started only when a row needs it; stopped last, after the gateways that use it.
  const redis = opts.rows.some((row) => row === 'gateway-throttle-redis' || SINK_ROWS.includes(row)) ? await benchRedis(pin.side, readyMs) : null
  if (redis) {
    notes.push(redis.note)
    closeRedis = () => redis.close()
  }
  const redisUrl = redis?.url ?? ''
  const throttles = await throttleRows(opts.rows, notes, redisUrl)
  const sinks = await sinkRows(opts.rows, notes, redisUrl)
  const rowsToRun = opts.rows.filter((row) =>
    IDENTITY[row]
      ? methods.has(IDENTITY[row].method)
      : THROTTLE_ROWS.includes(row)
        ? throttles.has(row)
        : SINK_ROWS.includes(row)
          ? sinks.has(row)
          : true,
  )
  // gateway-plain-clients-redis runs on gateway-throttle-redis's processes: it needs its Redis.
  if (rowsToRun.includes('gateway-plain-clients-redis')) {
    const problem = await redisProblem(redisUrl)
    if (problem) {
      notes.push(`gateway-plain-clients-redis: no Redis answering on ${redisUrl} (${problem}); row skipped`)
      rowsToRun.splice(rowsToRun.indexOf('gateway-plain-clients-redis'), 1)
    }
  }
  const identity: IdentityBench | null = methods.size ? await prepareIdentity(methods) : null
  // The throttle rows, and gateway-plain-clients (their requests on the plain route), cycle X-Client.
  const ringRows = [...throttles, ...rowsToRun.filter((row) => row === 'gateway-plain-clients' || row === 'gateway-plain-clients-redis')]
  const rings = new Map<Row, ClientRing>(ringRows.map((row) => [row, new ClientRing(randomBytes(4).toString('hex'))]))
  const credentialsFor = (row: Row): Credentials | undefined => rings.get(row) ?? identity?.credentials(row, url(row))
  console.log(machineLine())
  console.log(pin.describe(opts.rows.includes('gateway-workers') ? opts.workers : 1))
  console.log(
    `load: ${generatorName(load)}, ${opts.connections} connections, ${opts.warmup}s warm-up, ${opts.duration}s measured, ${opts.repeat} run(s) per row` +
      (opts.procs > 1 ? `, gateway rows on ${opts.procs} processes each (runs taken from each in turn)\n` : '\n'),
  )

  const upstream = await startScript('upstream', ['bench/upstream.ts'], pin.side, 10_000)
  // The tracing rows export to a local OTLP receiver, on the load side's CPU.
  const tracing = opts.rows.some((row) => TRACING_ROWS.includes(row))
    ? new TracingBench(await startScript('otlp-receiver', ['bench/tracing.ts', '--receiver'], pin.side, readyMs))
    : null
  // The gateway's CPU per request, for the rows that compare it (tracing, sinks).
  const cpuRows = new Set<Row>([
    ...(tracing ? TRACING_CPU_ROWS : []),
    ...SINK_ROWS,
    ...(throttles.size ? ['gateway-plain' as Row, 'gateway-plain-clients' as Row, ...throttles] : []),
    ...rowsToRun.filter((row) => row === 'gateway-plain-clients-redis'),
  ])
  const warmShare = (seconds(opts.warmup) + seconds(opts.duration)) / seconds(opts.duration)
  const cpu = new CpuTally(cpuRows, warmShare)
  // The bench's own Redis's CPU per request on the Redis throttle row (its decisions' share).
  const redisCpu = new CpuTally(new Set<Row>(throttles.has('gateway-throttle-redis') ? ['gateway-throttle-redis'] : []), warmShare)
  // Each row's base URLs: one, or one per gateway process with --procs (identity rows use the
  // first only: their credentials are made for one address).
  const bases = new Map<Row, string[]>([['direct', [upstream]]])
  const addBase = (row: Row, base: string) => bases.set(row, [...(bases.get(row) ?? []), base])
  const procs = Array.from({ length: opts.procs }, (_, p) => (opts.procs > 1 ? ` #${p + 1}` : ''))
  const gateways: [string, Gateway][] = []
  const extraFiles = { ...identity?.files, ...(throttles.size ? { 'throttle.policy': throttlePolicy() } : {}) }
  let policies: string | undefined
  const policyDir = async () => (policies ??= await writeBenchPolicies(join(import.meta.dir, 'policies'), upstream, extraFiles))
  // The --workers gateway serves only the six-directive route; without --redis it would refuse
  // the throttle and hmac routes (needs-redis).
  let basePolicies: string | undefined
  const basePolicyDir = async () => (basePolicies ??= await writeBenchPolicies(join(import.meta.dir, 'policies'), upstream))
  for (const row of rowsToRun) {
    if (row === 'nginx') {
      const binary = findNginx()
      if (!binary) {
        notes.push('nginx: not found on PATH or at /usr/sbin/nginx; row skipped')
        continue
      }
      const [port = 0] = freePorts(1)
      await startNginx(binary, pin.proxy(), port, upstream, ORDER, readyMs)
      addBase(row, `http://127.0.0.1:${port}`)
    } else if (row === 'bare-fetch' || row === 'bare-socket' || row === 'bare-raw') {
      addBase(row, await startScript(row, [`bench/${row}-proxy.ts`, '--upstream', upstream], pin.proxy(), readyMs))
    } else if (row === 'gateway-plain' || row === 'gateway-plain-clients' || row === 'gateway' || row === 'gateway-throttle' || IDENTITY[row]) {
      // One gateway (per --procs) answers all these rows, each on its own route.
      for (const suffix of IDENTITY[row] ? procs.slice(0, 1) : procs) {
        const name = `gateway${suffix}`
        if (!gateways.some(([n]) => n === name)) gateways.push([name, await startGateway(name, await policyDir(), 1, pin.proxy(), readyMs)])
        addBase(row, gateways.find(([n]) => n === name)?.[1].url ?? '')
      }
    } else if (row === 'gateway-throttle-redis' || row === 'gateway-plain-clients-redis') {
      // A second gateway on the same policies, its counters in Redis under a prefix of this run;
      // both rows on it (per --procs), each on its own route.
      if (!gateways.some(([n]) => n === `gateway --redis${procs[0]}`)) {
        const prefix = redisPrefix()
        cleanups.push(async () => {
          try {
            notes.push(`gateway --redis: deleted ${await deletePrefix(redisUrl, prefix)} Redis keys under ${prefix}`)
          } catch (err) {
            notes.push(`WARNING gateway --redis: Redis keys under ${prefix} not deleted: ${err instanceof Error ? err.message : String(err)}`)
          }
        })
        for (const suffix of procs) {
          const name = `gateway --redis${suffix}`
          gateways.push([name, await startGateway(name, await policyDir(), 1, pin.proxy(), readyMs, ['--redis', redisUrl, '--redis-prefix', prefix])])
        }
      }
      for (const suffix of procs) addBase(row, gateways.find(([n]) => n === `gateway --redis${suffix}`)?.[1].url ?? '')
    } else if (tracing && TRACING_ROWS.includes(row)) {
      // A gateway of its own per row (tracing is process-wide), on the same policies.
      for (const suffix of procs) {
        const gw = await startGateway(`${row}${suffix}`, await policyDir(), 1, pin.proxy(), readyMs, tracing.args(row))
        gateways.push([`${row}${suffix}`, gw])
        addBase(row, gw.url)
      }
    } else if (SINK_ROWS.includes(row)) {
      // Both sink rows on one gateway of their own (a `redis stream` sink needs --redis).
      const name = 'gateway --redis (sinks)'
      let gw = gateways.find(([n]) => n === name)?.[1]
      if (!gw) {
        const prefix = redisPrefix()
        const key = `${prefix}access`
        cleanups.push(async () => {
          try {
            if (sinks.has('gateway-sink-redis'))
              notes.push(`gateway-sink-redis: ${await streamEntries(redisUrl, key)} entries added to the stream ${key}`)
            notes.push(`sink rows: deleted ${await deletePrefix(redisUrl, prefix)} Redis keys under ${prefix}`)
          } catch (err) {
            notes.push(`WARNING sink rows: Redis keys under ${prefix} not deleted: ${err instanceof Error ? err.message : String(err)}`)
          }
        })
        const dir = await writeBenchPolicies(join(import.meta.dir, 'policies'), upstream, { 'sinks.policy': sinkPolicy(key) })
        gw = await startGateway(name, dir, 1, pin.proxy(), readyMs, sinkGatewayArgs(redisUrl, prefix))
        gateways.push([name, gw])
      }
      addBase(row, gw.url)
    } else if (row === 'gateway-workers') {
      const name = `gateway --workers ${opts.workers}`
      const gw = await startGateway(name, await basePolicyDir(), opts.workers, pin.proxy(opts.workers), readyMs)
      gateways.push([name, gw])
      addBase(row, gw.url)
    }
    const what = row === 'gateway-workers' ? `${row} (--workers ${opts.workers})` : row
    if (row !== 'direct' && bases.has(row)) console.log(`${what} ready on ${bases.get(row)?.join(', ')}`)
  }

  const targets = rowsToRun.filter((row) => bases.has(row))
  // The row's URL on its base `i` (round i of --repeat takes the processes in turn).
  const baseOf = (row: Row, i = 0) => {
    const all = bases.get(row) ?? ['']
    return all[i % all.length]!
  }
  const url = (row: Row, i = 0) => `${baseOf(row, i)}${PATHS[row][0]}`
  for (const row of targets)
    for (let b = 0; b < (bases.get(row)?.length ?? 0); b++) {
      const [, transformed] = PATHS[row]
      const base = baseOf(row, b)
      // An identity row's probe carries its credentials (one of its per-request ones, unsent before).
      const headers = { ...REQUEST_HEADERS, ...identity?.headers(row) }
      const credentials = credentialsFor(row)
      if (credentials) {
        for (const [name, value] of (await credentials.take(1))[0] ?? []) headers[name] = value
        credentials.spent(1)
      }
      const problems: string[] = []
      try {
        // A throttle row's answer carries RateLimit-Limit: the proof that the throttle ran.
        const answer: Record<string, string> = THROTTLE_ROWS.includes(row) ? { 'RateLimit-Limit': String(THROTTLE_LIMIT) } : {}
        if (row !== 'direct') problems.push(...(await probe(`${upstream}${ORDER}`, url(row, b), headers, transformed, answer)))
        if (transformed) problems.push(...(await probe(`${upstream}/items/7`, `${base}/svc${EXTRA_ROUTES - 1}/items/7`, REQUEST_HEADERS, false)))
        if (identity && IDENTITY[row]) problems.push(...(await probeRefusal(url(row), headers, identity.credentialHeaders(row))))
      } catch (err) {
        throw new Error(`${row} probe: ${err instanceof Error ? err.message : String(err)}`)
      }
      for (const p of problems) console.error(`WARNING ${row} probe: ${p}`)
    }

  const runs = new Map<Row, LoadResult[]>(targets.map((row) => [row, []]))
  const peaks = new Map<Row, number>()
  const reused = new Map<Row, number>()
  for (let i = 0; i < opts.repeat; i++) {
    // Round-robin, so slow drifts of a shared machine spread over all rows.
    for (const row of targets) {
      const load1 = () =>
        measure(url(row, i), load, {
          headers: identity?.headers(row) ?? {},
          credentials: credentialsFor(row),
          peakRps: peaks.get(row),
          guessRps: peaks.get('gateway-plain') ?? GUESS_RPS,
        })
      // With tracing rows, the gateway's CPU time per request too: throughput on a shared machine drifts.
      const pid = gateways.find(([, g]) => g.url === baseOf(row, i))?.[1].child.pid
      const m = await cpu.around(row, pid, () => redisCpu.around(row, redis?.pid, load1))
      runs.get(row)?.push(m.result)
      peaks.set(row, m.peakRps)
      if (m.reused) reused.set(row, (reused.get(row) ?? 0) + m.reused)
    }
  }
  // The same rows at a paced load (wrk only): what each proxy adds to latency when none is saturated.
  const pacedRows = opts.paceMs > 0 && load.wrk ? targets.filter((row) => PACED_ROWS.includes(row)) : []
  if (opts.paceMs > 0 && !load.wrk && targets.some((row) => PACED_ROWS.includes(row))) notes.push('paced runs: they need wrk; skipped')
  const pacedRuns = new Map<Row, LoadResult[]>(pacedRows.map((row) => [row, []]))
  for (let i = 0; i < opts.repeat; i++) for (const row of pacedRows) pacedRuns.get(row)?.push(await paced(url(row, i), load, opts.paceMs))
  if (tracing) notes.push(...(await tracing.notes(cpu)))
  notes.push(...sinkNotes(cpu))
  notes.push(...throttleNotes(cpu, redisCpu))
  for (const [name, gw] of gateways) await stopGateway(name, gw)
  await cleanUp()
  for (const [row, n] of reused) {
    notes.push(`WARNING ${row}: ${n} measured requests sent a credential again (its header file ran short): replays, which the gateway refuses`)
  }

  const rows: [string, LoadResult][] = targets.map((row) => [row, combine(runs.get(row) ?? [])])
  notes.push(...throttleRatios(rows))
  // Rows measured against a baseline, paired round by round.
  const paired = pairedRatios(runs, [
    ['gateway-throttle', 'gateway-plain-clients'],
    ['gateway-throttle-redis', 'gateway-plain-clients'],
    ['gateway-throttle-redis', 'gateway-plain-clients-redis'],
    ['gateway-trace-1', 'gateway-plain'],
    ['gateway-trace-100', 'gateway-plain'],
    ['gateway-sink-redis', 'gateway-sink-off'],
  ])
  if (paired) notes.push(paired)
  console.log(`\n${table(rows)}\n`)
  if (pacedRows.length > 0) {
    const pacedResults: [string, LoadResult][] = pacedRows.map((row) => [row, combine(pacedRuns.get(row) ?? [])])
    console.log(`paced: each of the ${opts.connections} connections waits ${opts.paceMs} ms after every answer (no proxy saturated)`)
    console.log(`${pacedTable(pacedResults)}\n`)
    rows.push(...pacedResults.map(([name, r]): [string, LoadResult] => [`${name} (paced)`, r]))
  }
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
  async (err: unknown) => {
    console.error(`bench: ${err instanceof Error ? err.message : String(err)}`)
    await cleanUp()
    process.exit(1)
  },
)
