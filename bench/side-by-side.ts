// Tracing's cost measured side by side: gateway processes with tracing off, at --trace-sample 0
// and at --trace-sample 0.01 (two of each by default), all pinned to the proxy's core and all
// loaded at once, one wrk each, for rounds of a few seconds. Whatever slows the machine in a
// round slows every process alike, so each traced process's CPU time per request is compared
// with the untraced processes' in the same round; the CPU is read per thread from /proc, so the
// request thread and the others (the span thread, the JIT's compiler threads, the allocator's
// scavenger) are told apart. Prints the medians of those ratios over the rounds.
//   bun bench/side-by-side.ts [--procs 2] [--rounds 12] [--duration 5] [--warmup 30] [--samples 0,0.01]
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { choosePinning } from './pinning.ts'
import { writeBenchPolicies } from './policy.ts'
import { median } from './stats.ts'
import { startGateway, startScript, stopGateway, type Gateway } from './targets.ts'
import { parseWrk } from './wrk.ts'

const { values } = parseArgs({
  options: {
    procs: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '12' },
    duration: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '30' },
    samples: { type: 'string', default: '0,0.01' },
    connections: { type: 'string', default: '48' },
  },
})
const procs = Number(values.procs)
const rounds = Number(values.rounds)
const duration = Number(values.duration)
const warmup = Number(values.warmup)
const samples = values.samples.split(',').map(Number)
const connections = Number(values.connections)
if (![procs, rounds, duration, warmup, connections, ...samples].every((n) => Number.isFinite(n) && n >= 0) || procs < 1) {
  console.error('usage: bun bench/side-by-side.ts [--procs N] [--rounds N] [--duration S] [--warmup S] [--samples R,R…] [--connections N]')
  process.exit(2)
}
const wrk = Bun.which('wrk')
if (!wrk) {
  console.error('side-by-side: wrk not found on PATH')
  process.exit(2)
}

// CPU nanoseconds each thread of a process has run, by thread id (/proc/PID/task/*/schedstat).
function threadTimes(pid: number): Map<number, number> {
  const out = new Map<number, number>()
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.set(Number(tid), Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]))
    } catch {
      // a thread that ended between the listing and the read
    }
  }
  return out
}

// What the threads ran between two readings: the main thread (the one that serves requests)
// and all the others (a thread that ended in between is left out; one that started counts whole).
function ran(pid: number, before: Map<number, number>, after: Map<number, number>): { main: number; others: number } {
  let main = 0
  let others = 0
  for (const [tid, ns] of after) {
    const d = ns - (before.get(tid) ?? 0)
    if (tid === pid) main += d
    else others += d
  }
  return { main, others }
}

interface Process {
  setting: string
  name: string
  gw: Gateway
}

const pin = choosePinning(true)
const started: Process[] = []
const readyMs = 15_000
try {
  const upstream = await startScript('upstream', ['bench/upstream.ts'], pin.side, readyMs)
  const receiver = await startScript('otlp-receiver', ['bench/tracing.ts', '--receiver'], pin.side, readyMs)
  const policies = await writeBenchPolicies(join(import.meta.dir, 'policies'), upstream)
  const settings: [string, string[]][] = [
    ['off', []],
    ...samples.map((r): [string, string[]] => [`sample ${r}`, ['--otlp-endpoint', receiver, '--trace-sample', String(r)]]),
  ]
  for (let p = 0; p < procs; p++)
    for (const [setting, args] of settings) {
      const name = `${setting} #${p + 1}`
      started.push({ setting, name, gw: await startGateway(name, policies, 1, pin.proxy(), readyMs, args) })
    }
  console.log(pin.describe(1))
  console.log(
    `${started.length} gateway processes on one core (${settings.map(([s]) => s).join(', ')}; ${procs} of each), loaded at once by one wrk each ` +
      `(${Math.max(1, Math.floor(connections / started.length))} connections), ${warmup} s of warm-up, ${rounds} rounds of ${duration} s\n`,
  )
  const conns = Math.max(1, Math.floor(connections / started.length))
  const loadAll = (seconds: number) =>
    Promise.all(
      started.map(async ({ gw }) => {
        const child = Bun.spawn([...pin.side, wrk, '-t1', `-c${conns}`, `-d${seconds}s`, '--latency', `${gw.url}/plain/orders/1`], { stdout: 'pipe' })
        const out = await new Response(child.stdout).text()
        await child.exited
        return parseWrk(out)
      }),
    )
  if (warmup > 0) await loadAll(warmup)
  // Per setting: the ratios of its processes' CPU per request to the untraced ones' mean, by round.
  const ratios = new Map<string, { main: number[]; all: number[]; us: number[]; rps: number[] }>(
    settings.map(([s]) => [s, { main: [], all: [], us: [], rps: [] }]),
  )
  for (let r = 0; r < rounds; r++) {
    const before = started.map(({ gw }) => threadTimes(gw.child.pid))
    const results = await loadAll(duration)
    const per = started.map(({ gw }, i) => {
      const { main, others } = ran(gw.child.pid, before[i]!, threadTimes(gw.child.pid))
      const n = results[i]!.requests
      return { main: main / n / 1e3, all: (main + others) / n / 1e3 }
    })
    const off = started.flatMap((p, i) => (p.setting === 'off' ? [per[i]!] : []))
    const offMain = off.reduce((s, x) => s + x.main, 0) / off.length
    const offAll = off.reduce((s, x) => s + x.all, 0) / off.length
    started.forEach((p, i) => {
      const t = ratios.get(p.setting)!
      t.main.push(per[i]!.main / offMain)
      t.all.push(per[i]!.all / offAll)
      t.us.push(per[i]!.all)
      t.rps.push(results[i]!.rps)
    })
    console.log(`round ${r + 1}: ${started.map((p, i) => `${p.name} ${per[i]!.all.toFixed(1)} µs`).join(', ')}`)
  }
  console.log('\nsetting          CPU µs/request  vs off, all threads  vs off, request thread  req/s per process')
  for (const [setting, t] of ratios) {
    const pct = (x: number) => `${x >= 1 ? '+' : ''}${((x - 1) * 100).toFixed(1)}%`
    console.log(
      `${setting.padEnd(16)} ${median(t.us).toFixed(1).padStart(14)}  ${pct(median(t.all)).padStart(19)}  ${pct(median(t.main)).padStart(22)}  ${median(t.rps).toFixed(0).padStart(17)}`,
    )
  }
} finally {
  for (const { name, gw } of started) await stopGateway(name, gw)
  process.exit(0)
}
