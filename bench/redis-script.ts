// What the throttle's Lua script costs Redis, apart from the gateway: the script the Redis
// store sends (src/store/redis-limits.ts), called the way the gateway calls it (decisions of
// one rule list batched into one EVALSHA, no index per decision) at a steady rate, on a
// redis-server this script starts on a free port (pinned to CPU 0 when taskset is there).
// Prints, per decision: the time Redis spent inside EVALSHA (INFO commandstats), the part of
// it in the commands the script called, and the server's whole CPU (networking included).
//
//   bun bench/redis-script.ts [--seconds 8] [--rate 12000] [--batch 14] [--clients 1000]
//                             [--script FILE [--index]]
//
// --script: a module exporting HIT_SCRIPT instead (e.g. an earlier version's
// src/store/redis-limits.ts, to compare in alternating runs: this VM's speed drifts by up to
// 2x over minutes); --index sends a list index per decision, as the gateway did before
// 3 December 2026.
//
// The defaults are the throttle rows' traffic: `throttle 100/s per header X-Client` over 1,000
// client ids at about the rate the gateway reaches, so each id's list holds ~12 times and one
// leaves per admission, as in the bench.
import { parseArgs } from 'node:util'
import Redis from 'ioredis'
import { freePorts, killAll, spawnChild, stop, watchChild } from './children.ts'
import { HIT_SCRIPT } from '../src/store/redis-limits.ts'

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '8' },
    rate: { type: 'string', default: '12000' },
    batch: { type: 'string', default: '14' },
    clients: { type: 'string', default: '1000' },
    script: { type: 'string' },
    index: { type: 'boolean', default: false },
  },
})
const seconds = Number(values.seconds)
const rate = Number(values.rate)
const batch = Number(values.batch)
const clients = Number(values.clients)
const script: string = values.script ? (await import(values.script)).HIT_SCRIPT : HIT_SCRIPT

const binary = Bun.which('redis-server')
if (!binary) {
  console.error('redis-server is not on PATH')
  process.exit(1)
}
const taskset = Bun.which('taskset')
const [port = 0] = freePorts(1)
const server = spawnChild(
  [...(taskset ? [taskset, '-c', '0'] : []), binary, '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
  process.cwd(),
)
try {
  await watchChild(server, (line) => /ready to accept connections/i.test(line), 5_000).ready
  const redis = new Redis({ port, host: '127.0.0.1' })
  const sha = (await redis.script('LOAD', script)) as string
  await redis.config('RESETSTAT')
  const cpu = async () => {
    const info = await redis.info('cpu')
    return Number(/used_cpu_sys:([\d.]+)/.exec(info)![1]) + Number(/used_cpu_user:([\d.]+)/.exec(info)![1])
  }
  // The rule list the bench's throttle route sends: 100 per 1000 ms, sliding.
  let next = 0
  const call = (): Promise<unknown> => {
    const keys: string[] = []
    for (let i = 0; i < batch; i++) keys.push(`bench:rl:{tag}:throttle-log:header:${next++ % clients}`)
    return redis.evalsha(sha, keys.length, ...keys, 's,100,1000', ...(values.index ? keys.map(() => '1') : []))
  }
  const cpu0 = await cpu()
  const t0 = performance.now()
  let sent = 0
  let inflight = 0
  await new Promise<void>((done) => {
    const tick = () => {
      const elapsed = performance.now() - t0
      if (elapsed > seconds * 1000) {
        if (inflight === 0) return done()
        return void setTimeout(tick, 5)
      }
      while (sent * batch < (elapsed / 1000) * rate && inflight < 8) {
        inflight++
        sent++
        void call().finally(() => inflight--)
      }
      setTimeout(tick, 1)
    }
    tick()
  })
  const cpu1 = await cpu()
  const decisions = sent * batch
  let evalUs = 0
  let innerUs = 0
  const inner: string[] = []
  for (const line of (await redis.info('commandstats')).split('\n')) {
    const m = /^cmdstat_([\w|]+):calls=(\d+),usec=(\d+)/.exec(line)
    if (!m) continue
    const [, name, calls, usec] = m
    if (name === 'evalsha') evalUs = Number(usec)
    else if (!/^(script|config|info)/.test(name!)) {
      innerUs += Number(usec)
      inner.push(`${name} ${(Number(calls) / decisions).toFixed(2)}`)
    }
  }
  redis.disconnect()
  const per = (us: number) => (us / decisions).toFixed(2)
  console.log(`${decisions} decisions in ${sent} calls of ${batch} (${seconds} s at ${rate}/s over ${clients} keys)`)
  console.log(`commands per decision: ${inner.join(', ')}`)
  console.log(`inside EVALSHA ${per(evalUs)} µs a decision (the commands themselves ${per(innerUs)}, the rest Lua and its calls into Redis)`)
  console.log(`redis-server CPU ${per((cpu1 - cpu0) * 1e6)} µs a decision (networking included)`)
} finally {
  await stop(server, 2_000)
  killAll()
}
