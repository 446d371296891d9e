// Closed-loop load generator: N connections, each sending one request at a time.
// Prints one JSON line (a LoadResult, plus `sent` with --header-file) on stdout.
// bun bench/load.ts --url URL [--connections 32] [--duration 10] [--warmup 1]
//                   [--max-requests 1000000] [--timeout 5] [--header "Name: value"]...
//                   [--header-file FILE]
// --header-file: every request (warm-up included) takes the next line's headers
// (bench/header-file.ts), cycling, on top of the --header ones.
import { parseArgs } from 'node:util'
import { readHeaderFile } from './header-file.ts'
import { seconds, summarize, type LoadResult } from './stats.ts'

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    connections: { type: 'string', default: '32' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '1' },
    'max-requests': { type: 'string', default: '1000000' },
    timeout: { type: 'string', default: '5' },
    header: { type: 'string', multiple: true, default: [] },
    'header-file': { type: 'string' },
  },
  strict: true,
})

if (!values.url) throw new Error('load: --url is required')
const url = values.url
const connections = Math.max(1, Number.parseInt(values.connections, 10))
const maxRequests = Math.max(1, Number.parseInt(values['max-requests'], 10))
const timeoutMs = seconds(values.timeout) * 1000
const headers = new Headers()
for (const h of values.header) {
  const colon = h.indexOf(':')
  if (colon > 0) headers.set(h.slice(0, colon).trim(), h.slice(colon + 1).trim())
}
// Built before the clock starts, so a request only picks the next one.
const cycle = values['header-file']
  ? readHeaderFile(values['header-file']).map((line) => {
      const h = new Headers(headers)
      for (const [name, value] of line) h.set(name, value)
      return h
    })
  : [headers]
let sent = 0

const latencies = new Float64Array(maxRequests)
const errorKinds: Record<string, number> = {}
let recorded = 0
let errors = 0

const measureFrom = performance.now() + seconds(values.warmup) * 1000
const stopAt = measureFrom + seconds(values.duration) * 1000

async function send(): Promise<string | null> {
  try {
    const res = await fetch(url, { headers: cycle[sent++ % cycle.length], signal: AbortSignal.timeout(timeoutMs) })
    await res.arrayBuffer()
    return res.status >= 200 && res.status < 300 ? null : String(res.status)
  } catch (err) {
    return err instanceof Error ? err.name : 'network'
  }
}

async function connection(): Promise<void> {
  for (;;) {
    const start = performance.now()
    if (start >= stopAt) return
    const measured = start >= measureFrom
    if (measured && recorded >= maxRequests) return
    const slot = measured ? recorded++ : -1
    const failure = await send()
    if (slot < 0) continue
    latencies[slot] = performance.now() - start
    if (failure !== null) {
      errors++
      errorKinds[failure] = (errorKinds[failure] ?? 0) + 1
    }
  }
}

await Promise.all(Array.from({ length: connections }, connection))
const elapsedMs = Math.max(performance.now() - measureFrom, 1)
const result: LoadResult = summarize(latencies.subarray(0, recorded), errors, errorKinds, elapsedMs)
console.log(JSON.stringify(values['header-file'] ? { ...result, sent } : result))
