// What the web console reads from the admin API: GET /traffic (and /traffic/stream), /upstreams,
// /reloads, /source, and POST /explain (which changes nothing). None needs the admin token.
import { statSync } from 'node:fs'
import { isIP } from 'node:net'
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path'
import { z } from 'zod'
import { Metrics, type TrafficTotals } from '../metrics/metrics.ts'
import { diagnosticJson, renderDiagnostics } from '../policy/diagnostics.ts'
import { renderTrace } from '../runtime/decisions.ts'
import { GatewayError } from '../runtime/gateway-error.ts'
import { available } from '../runtime/upstream.ts'
import { sourcesOf } from '../testing/facts.ts'
import type { Gateway } from './gateway.ts'
import { HISTORY_SECONDS, TrafficHistory, trafficStream } from './traffic.ts'

export const MAX_EXPLAIN_BODY = 64 * 1024
export const EXPLAIN_TIMEOUT_MS = 5_000
const DEFAULT_MINUTES = 10
const STREAM_HISTORY = 60

type Handler = (req: Request) => Response | GatewayError | Promise<Response | GatewayError>

const json = (body: unknown, status = 200) => Response.json(body, { status, headers: { 'cache-control': 'no-store' } })

// The totals of the traffic history: this process's, or under --workers the workers' (as they
// last reported them, every second).
function trafficReader(gw: Gateway): () => TrafficTotals {
  const { metrics, workerMetrics } = gw.settings
  if (!workerMetrics) return () => metrics.traffic()
  return () => {
    const total = new Metrics()
    workerMetrics(total)
    return total.traffic()
  }
}

// One target in GET /upstreams (the console's Upstreams page reads it: client/api.ts).
export interface TargetRow {
  url: string
  healthy: boolean
  active: number
  attempts: number
  failures: number
  retries: number
  ejected: boolean
  workers_healthy?: number // under --workers: how many of the reporting workers have it in the rotation
}

// The current program's named upstreams and their targets. Under --workers the primary sends
// nothing upstream: the numbers are the workers' (a target is healthy when every reporting
// worker has it in the rotation, ejected when one has ejected it).
function upstreams(gw: Gateway): unknown {
  const now = performance.now()
  const pools = gw.program.pools
  if (!gw.settings.workerMetrics) {
    return {
      upstreams: pools.map((p) => ({
        name: p.name,
        targets: p.targets.map((t): TargetRow => ({
          url: `${t.origin}${t.basePath}`,
          healthy: available(t, now),
          active: t.state.active,
          attempts: t.state.attempts,
          failures: t.state.failures,
          retries: t.state.retries,
          ejected: t.state.ejectedUntil > now,
        })),
      })),
    }
  }
  const total = new Metrics()
  gw.settings.workerMetrics(total)
  const workers = total.snapshotsAdded
  const family = (name: string) => new Map(total.samples(name).map((s) => [`${s.labels.upstream}\0${s.labels.target}`, s.value]))
  const [healthy, ejected, active, attempts, failures, retries] = [
    'gateway_upstream_target_healthy',
    'gateway_upstream_target_ejected',
    'gateway_upstream_active_requests',
    'gateway_upstream_attempts_total',
    'gateway_upstream_failures_total',
    'gateway_upstream_retries_total',
  ].map(family) as [Map<string, number>, Map<string, number>, Map<string, number>, Map<string, number>, Map<string, number>, Map<string, number>]
  return {
    workers,
    upstreams: pools.map((p) => ({
      name: p.name,
      targets: p.targets.map((t): TargetRow => {
        const url = `${t.origin}${t.basePath}`
        const key = `${p.name}\0${url}`
        const inRotation = healthy.get(key) ?? 0
        return {
          url,
          healthy: workers > 0 && inRotation >= workers,
          active: active.get(key) ?? 0,
          attempts: attempts.get(key) ?? 0,
          failures: failures.get(key) ?? 0,
          retries: retries.get(key) ?? 0,
          ejected: (ejected.get(key) ?? 0) > 0,
          workers_healthy: inRotation,
        }
      }),
    })),
  }
}

function reloads(gw: Gateway): unknown {
  const r = gw.rejected
  return {
    version: gw.program.version,
    loaded_at: gw.loadedAt,
    last: gw.lastReload,
    rejected: r && { since: r.since, reason: r.reason, diagnostics: r.diagnostics, text: r.text },
  }
}

// The directory policy files are shown relative to (a single policy file's own directory).
function policyBase(policies: string): string {
  const abs = resolve(policies)
  try {
    return statSync(abs).isDirectory() ? abs : dirname(abs)
  } catch {
    return dirname(abs)
  }
}

const toSlash = (p: string) => p.split(sep).join('/')

// GET /source?file=REL&line=N: a policy file the current program was built from, as it was loaded.
// REL is relative to the policy directory (or the path as a route's location shows it).
function source(gw: Gateway, url: URL): Response | GatewayError {
  const file = url.searchParams.get('file')
  const lineParam = url.searchParams.get('line')
  if (file === null || file === '')
    return new GatewayError('bad_request', 'say which file: /source?file=PATH&line=N (PATH relative to the policy directory)')
  let line: number | null = null
  if (lineParam !== null) {
    if (!/^[1-9]\d{0,8}$/.test(lineParam))
      return new GatewayError('bad_request', `line must be a whole number from 1, not '${lineParam.slice(0, 40)}'`)
    line = Number(lineParam)
  }
  const unknown = new GatewayError('no_route', `'${file.slice(0, 200)}' is not a policy file of the program serving now`)
  // Never a way out of the directory: a `..` step, or a NUL, is refused before any lookup.
  if (file.includes('\0') || file.split(/[/\\]/).includes('..')) return unknown
  const sources = sourcesOf(gw.program)
  if (!sources) return unknown
  const base = policyBase(gw.settings.policies)
  const inside = (abs: string) => {
    const rel = relative(base, abs)
    return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel)
  }
  let found: [string, { path: string; text: string }] | undefined
  const wanted = resolve(base, file)
  const direct = !isAbsolute(file) ? sources.get(wanted) : undefined
  if (direct) found = [wanted, direct]
  else for (const [abs, s] of sources) if (s.path === file) found = [abs, s]
  if (!found || !inside(found[0])) return unknown
  const lines = found[1].text.split(/\r?\n/)
  const rel = toSlash(relative(base, found[0]))
  if (line !== null && line > lines.length) return new GatewayError('bad_request', `${rel} has ${lines.length} lines; there is no line ${line}`)
  return json({ file: rel, lines, line })
}

const METHOD = /^[A-Za-z]{1,20}$/
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

const ExplainBody = z
  .object({
    method: z.string().regex(METHOD, { message: 'a method like GET or POST' }),
    path: z.string().startsWith('/', { message: 'a path starting with /, then ?query if any' }).max(8192),
    headers: z
      .record(
        z.string().regex(HEADER_NAME, { message: 'not a header name' }),
        z.string().regex(/^[^\r\n\0]*$/, { message: 'a header value is one line' }),
      )
      .optional(),
    app: z.string().min(1).max(256).optional(),
    ip: z
      .string()
      .refine((v) => isIP(v) !== 0, { message: 'not an IP address' })
      .optional(),
    body: z.string().optional(),
  })
  .strict()

function invalid(issues: readonly z.core.$ZodIssue[]): GatewayError {
  const text = issues
    .flatMap((i) => {
      const at = i.path.map(String).join('.') || 'the body'
      if (i.code === 'unrecognized_keys')
        return i.keys.map((k) => `${k}: unknown field (the fields are ${Object.keys(ExplainBody.shape).join(', ')})`)
      if (i.code === 'invalid_key') return [`${at}: not a header name`]
      return [`${at}: ${i.message}`]
    })
    .join('; ')
  return new GatewayError('bad_request', `the explain request is not valid: ${text}`)
}

async function readBody(req: Request): Promise<string | GatewayError> {
  const tooLarge = new GatewayError('payload_too_large', `an explain request is at most ${MAX_EXPLAIN_BODY / 1024} KiB of JSON`)
  const declared = req.headers.get('content-length')
  if (declared !== null && Number(declared) > MAX_EXPLAIN_BODY) return tooLarge
  const chunks: Uint8Array[] = []
  let size = 0
  if (req.body) {
    for await (const chunk of req.body) {
      size += chunk.byteLength
      if (size > MAX_EXPLAIN_BODY) return tooLarge
      chunks.push(chunk)
    }
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks))
  } catch {
    return new GatewayError('bad_request', 'the body is not UTF-8')
  }
}

// One explain at a time: each builds the policies aside (with their own memory store and mock
// upstreams), so a burst of calls cannot pile builds up in the serving process.
interface Lane {
  tail: Promise<unknown>
}

async function explain(gw: Gateway, req: Request, lane: Lane): Promise<Response | GatewayError> {
  const text = await readBody(req)
  if (text instanceof GatewayError) return text
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch {
    return new GatewayError('bad_request', 'the body is not valid JSON: send {"method", "path", "headers"?, "app"?, "ip"?, "body"?}')
  }
  const parsed = ExplainBody.safeParse(raw)
  if (!parsed.success) return invalid(parsed.error.issues)
  const b = parsed.data
  const input = {
    method: b.method.toUpperCase(),
    target: b.path,
    headers: Object.entries(b.headers ?? {}),
    as: b.app ?? null,
    body: b.body === undefined ? null : new TextEncoder().encode(b.body),
    ip: b.ip ?? '127.0.0.1',
  }
  const work = lane.tail.then(async (): Promise<Response | GatewayError> => {
    const lib = await import('../testing/explain.ts')
    let opened
    try {
      opened = await lib.openExplainer(gw.settings.policies, { callers: input.as !== null })
    } catch (err) {
      return new GatewayError('internal_error', `cannot build the policies to explain: ${(err as Error).message.split('\n')[0]}`)
    }
    if ('diagnostics' in opened)
      return json({ diagnostics: opened.diagnostics.map(diagnosticJson), text: renderDiagnostics(opened.diagnostics) }, 422)
    try {
      const out = await opened.run(input)
      const body = out.body.length > lib.BODY_SHOWN ? `${out.body.slice(0, lib.BODY_SHOWN)}…` : out.body
      return json({ trace: out.trace, text: renderTrace(out.trace), answer: { status: out.status, headers: out.headers, body } })
    } catch (err) {
      // The request cannot be made as asked (an unknown app, a Host that makes no URL).
      return new GatewayError('bad_request', (err as Error).message.split('\n')[0]!)
    } finally {
      await opened.close()
    }
  })
  lane.tail = work.catch(() => {})
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise<GatewayError>((done) => {
    timer = setTimeout(() => done(new GatewayError('internal_error', `explain took longer than ${EXPLAIN_TIMEOUT_MS / 1000} s`)), EXPLAIN_TIMEOUT_MS)
  })
  try {
    return await Promise.race([work, late])
  } finally {
    clearTimeout(timer)
  }
}

export interface ConsoleApi {
  routes: Record<string, Handler>
  traffic: TrafficHistory
}

export function consoleApi(gw: Gateway): ConsoleApi {
  const traffic = new TrafficHistory(trafficReader(gw))
  const lane: Lane = { tail: Promise.resolve() }
  const routes: Record<string, Handler> = {
    'GET /traffic': (req) => {
      const m = new URL(req.url).searchParams.get('minutes')
      const minutes = m === null ? DEFAULT_MINUTES : Number(m)
      if (m !== null && (!/^\d+$/.test(m) || minutes < 1 || minutes > HISTORY_SECONDS / 60))
        return new GatewayError('bad_request', `minutes must be a whole number from 1 to ${HISTORY_SECONDS / 60}, not '${m.slice(0, 40)}'`)
      return json({ interval_s: 1, points: traffic.recent(minutes * 60), streams: traffic.subscribers })
    },
    'GET /traffic/stream': (req) => trafficStream(traffic, req.signal, STREAM_HISTORY),
    'GET /upstreams': () => json(upstreams(gw)),
    'GET /reloads': () => json(reloads(gw)),
    'GET /source': (req) => source(gw, new URL(req.url)),
    'POST /explain': (req) => explain(gw, req, lane),
  }
  return { routes, traffic }
}
