// Command line of bench/run.ts.
import { parseArgs } from 'node:util'

export const ROWS = [
  'direct',
  'nginx',
  'bare-fetch',
  'bare-socket',
  'bare-raw',
  'gateway-plain',
  'gateway',
  'gateway-key',
  'gateway-jwt-rs256-cached',
  'gateway-jwt-rs256',
  'gateway-jwt-es256-cached',
  'gateway-jwt-es256',
  'gateway-hmac',
  'gateway-plain-clients',
  'gateway-throttle',
  'gateway-throttle-redis',
  'gateway-plain-clients-redis',
  'gateway-sink-off',
  'gateway-sink-redis',
  'gateway-trace-100',
  'gateway-trace-1',
  'gateway-trace-down',
  'gateway-workers',
] as const
export type Row = (typeof ROWS)[number]

export const USAGE = `usage: bun bench/run.ts [--connections 50] [--duration 10] [--warmup 1] [--repeat 1]
                       [--only ${ROWS.join(',')}] [--workers N] [--procs N] [--no-pin]
                       [--load auto|wrk|bun] [--max-requests 1000000] [--ready-timeout 15]
                       [--pace MS]   (the paced latency runs: each connection waits MS ms between
                                      requests; default 10, 0 skips them)
       --procs N: each gateway row on N gateway processes, its runs taken from each in turn
                  (a process settles on a speed of its own: use with --repeat a multiple of N)`

export interface BenchOptions {
  rows: Row[]
  workers: number
  procs: number // gateway processes per gateway row (the runs rotate over them)
  connections: number
  duration: string
  warmup: string
  repeat: number
  pin: boolean
  load: 'auto' | 'wrk' | 'bun'
  maxRequests: string
  readyTimeout: string
  paceMs: number // 0: no paced runs
}

function count(text: string, flag: string, min: number): number {
  const n = Number(text)
  if (!Number.isInteger(n) || n < min) throw new Error(`${flag} must be a whole number ≥ ${min}, not ${text}`)
  return n
}

export function parseOptions(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      connections: { type: 'string', default: '50' },
      duration: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '1' },
      repeat: { type: 'string', default: '1' },
      only: { type: 'string' },
      workers: { type: 'string' },
      procs: { type: 'string', default: '1' },
      'no-pin': { type: 'boolean', default: false },
      load: { type: 'string', default: 'auto' },
      'max-requests': { type: 'string', default: '1000000' },
      'ready-timeout': { type: 'string', default: '15' },
      pace: { type: 'string', default: '10' },
    },
    strict: true,
  })
  const picked = values.only?.split(',').map((s) => s.trim()) ?? ROWS.filter((r) => r !== 'gateway-workers' || values.workers)
  const unknown = picked.filter((r) => !(ROWS as readonly string[]).includes(r))
  if (unknown.length) throw new Error(`--only: unknown row ${unknown.join(', ')} (rows: ${ROWS.join(', ')})`)
  const workers = values.workers ? count(values.workers, '--workers', 2) : picked.includes('gateway-workers') ? 2 : 1
  if (!['auto', 'wrk', 'bun'].includes(values.load)) throw new Error(`--load must be auto, wrk or bun, not ${values.load}`)
  return {
    rows: ROWS.filter((r) => picked.includes(r)),
    workers,
    procs: count(values.procs, '--procs', 1),
    connections: count(values.connections, '--connections', 1),
    duration: values.duration,
    warmup: values.warmup,
    repeat: count(values.repeat, '--repeat', 1),
    pin: !values['no-pin'],
    load: values.load as BenchOptions['load'],
    maxRequests: values['max-requests'],
    readyTimeout: values['ready-timeout'],
    paceMs: count(values.pace, '--pace', 0),
  }
}
