// The tracing rows: gateway-plain's route (`/plain/orders/{id}`, only `proxy`) on gateways
// started with tracing on, each its own process pinned like the first (only one is loaded at
// a time). The load sends no traceparent, so the sample ratio decides:
//   gateway-trace-100   --trace-sample 1 to a local OTLP/HTTP receiver (this file, run with --receiver)
//   gateway-trace-1     --trace-sample 0.01 to the same receiver
//   gateway-trace-down  --trace-sample 1 to a closed port: every export fails
// Default exporter (http/protobuf) and batch processor settings (queue 2048, batches of 512,
// 5 s delay). After the runs, each gateway's gateway_trace_spans_total and what the receiver
// took are printed as notes.
import { freePorts } from './children.ts'
import { exitWithParent } from './lifeline.ts'
import type { CpuTally } from './cpu.ts'
import type { Row } from './options.ts'

export const TRACING_ROWS: readonly Row[] = ['gateway-trace-100', 'gateway-trace-1', 'gateway-trace-down']

const SAMPLE: Record<string, string> = { 'gateway-trace-100': '1', 'gateway-trace-1': '0.01', 'gateway-trace-down': '1' }

// Rows whose gateway's CPU time is read around each run: the tracing rows and their baseline.
export const TRACING_CPU_ROWS: readonly Row[] = ['gateway-plain', ...TRACING_ROWS]

export class TracingBench {
  private readonly admin = new Map<Row, number>()

  // `receiver`: the URL of the receiver this file serves (startScript of `bench/tracing.ts --receiver`).
  constructor(private readonly receiver: string) {}

  /** The gateway's extra arguments for a tracing row (its admin port is kept to read /metrics). */
  args(row: Row): string[] {
    const [adminPort = 0, closed = 0] = freePorts(2)
    this.admin.set(row, adminPort)
    const endpoint = row === 'gateway-trace-down' ? `http://127.0.0.1:${closed}` : this.receiver
    // startGateway sets its own --admin-port first; the last one given wins.
    return ['--otlp-endpoint', endpoint, '--trace-sample', SAMPLE[row] ?? '1', '--admin-port', String(adminPort)]
  }

  /** One note per tracing row: spans exported, dropped and failed so far, and what the receiver took. */
  async notes(cpuTally: CpuTally): Promise<string[]> {
    const out: string[] = []
    for (const [row, port] of this.admin) {
      try {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
        const count = (result: string) => Number(new RegExp(`^gateway_trace_spans_total\\{result="${result}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0)
        out.push(
          `${row}: spans exported ${count('exported')}, dropped (queue full) ${count('dropped')}, failed ${count('failed')} by the end of the runs`,
        )
      } catch (err) {
        out.push(`WARNING ${row}: its /metrics could not be read: ${err instanceof Error ? err.message : String(err)}`)
      }
    }
    const plain = cpuTally.perRequest('gateway-plain')
    const cpu = cpuTally.measured
      .filter((row) => TRACING_CPU_ROWS.includes(row))
      .flatMap((row) => {
        const us = cpuTally.perRequest(row)
        if (us === null) return []
        const vs = plain === null || row === 'gateway-plain' ? '' : ` (${us >= plain ? '+' : ''}${(((us - plain) / plain) * 100).toFixed(1)}%)`
        return [`${row} ${us.toFixed(1)} µs${vs}`]
      })
    if (cpu.length) out.push(`gateway CPU time per request (user + system, all runs): ${cpu.join(', ')}`)
    if (this.admin.size > 0) {
      try {
        const stats = (await (await fetch(`${this.receiver}/stats`)).json()) as { posts: number; bytes: number }
        out.push(`OTLP receiver: ${stats.posts} exports, ${(stats.bytes / 1e6).toFixed(1)} MB`)
      } catch (err) {
        out.push(`WARNING OTLP receiver: no stats: ${err instanceof Error ? err.message : String(err)}`)
      }
    }
    return out
  }
}

// The receiver: takes OTLP/HTTP exports (any body), answers an empty success, and counts them.
if (import.meta.main && process.argv.includes('--receiver')) {
  let posts = 0
  let bytes = 0
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(req) {
      if (req.method === 'GET' && new URL(req.url).pathname === '/stats') return Response.json({ posts, bytes })
      bytes += (await req.arrayBuffer()).byteLength
      posts++
      return new Response(new Uint8Array(0), { headers: { 'content-type': req.headers.get('content-type') ?? 'application/x-protobuf' } })
    },
  })
  console.log(`listening on http://127.0.0.1:${server.port}`)
  exitWithParent(() => server.stop(true))
}
