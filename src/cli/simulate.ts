// `gateway simulate DIR TRACE [--json]`: replays a recorded traffic trace against the policies
// of DIR, in process, on the testing kit's clock and a fresh memory store, every upstream
// answering 200, and reports per app and route what would have been admitted, throttled and
// refused. TRACE is the gateway's JSON access log (one object per line; other lines are
// skipped), or CSV with a header naming at least `time` and `route` (or `path`), and
// optionally `app`, `method`, `ip`. Exit 0; 1 with the diagnostics of `gateway check` when the
// policies do not check; 2 on misuse or an unreadable trace.
import { readFileSync } from 'node:fs'
import { commandArgs, usageExit as usage } from './command-args.ts'
import { loadGateway, type Gateway } from '../testing/index.ts'

export const SIMULATE_USAGE = 'usage: gateway simulate DIR TRACE [--json]   (TRACE: a JSON access log, or CSV of time,app,route)'

// One request of the trace.
export interface TraceEntry {
  line: number // in the trace file, 1-based
  time: number // ms since the epoch
  method: string
  target: string // path and query
  app: string | null
  ip: string
  // What the recorded run answered (a JSON access log has it; CSV does not).
  recorded: Outcome | null
}

export type Outcome = 'admitted' | 'throttled' | 'refused' | 'failed'
const OUTCOMES: readonly Outcome[] = ['admitted', 'throttled', 'refused', 'failed']

export interface ReportRow {
  app: string // '-' for an unidentified caller
  route: string // the route id, or '(no route)'
  requests: number
  simulated: Record<Outcome, number>
  recorded: Record<Outcome, number> | null
}

export interface Report {
  rows: ReportRow[]
  skipped: { line: number; reason: string }[]
  total: { requests: number; simulated: Record<Outcome, number>; recorded: Record<Outcome, number> | null }
}

const THROTTLED = new Set(['rate_limited', 'quota_exceeded'])

// What an answer means for the report: the gateway's own refusals by their code.
export function outcomeOf(status: number, gatewayError: string | null): Outcome {
  if (gatewayError === null || gatewayError === '') return status >= 500 ? 'failed' : 'admitted'
  if (THROTTLED.has(gatewayError)) return 'throttled'
  return status >= 500 ? 'failed' : 'refused'
}

class TraceError extends Error {}

function timeOf(text: unknown, line: number): number {
  const t = typeof text === 'number' ? text : typeof text === 'string' ? (/^\d+(\.\d+)?$/.test(text) ? Number(text) : Date.parse(text)) : Number.NaN
  if (!Number.isFinite(t)) throw new TraceError(`line ${line}: 'time' must be an ISO 8601 time or ms since the epoch, not ${JSON.stringify(text)}`)
  return t
}

// A concrete path for a route pattern: each parameter gets a plain value of its kind.
function samplePath(pattern: string): string {
  return pattern.replace(/\{([^}]*)\}/g, (_, inner: string) => (inner.endsWith('*') ? 'x' : inner.includes(':') ? '1' : 'x'))
}

function fromJsonLine(o: Record<string, unknown>, line: number): TraceEntry | null {
  if (typeof o.method !== 'string' || typeof o.path !== 'string') return null // an event line, not a request
  const query = typeof o.query === 'string' && o.query !== '' ? `?${o.query}` : ''
  const status = typeof o.status === 'number' ? o.status : null
  const code = typeof o.gateway_error === 'string' ? o.gateway_error : null
  return {
    line,
    time: timeOf(o.time, line),
    method: o.method,
    target: `${o.path}${query}`,
    app: typeof o.app === 'string' && o.app !== '' ? o.app : null,
    ip: typeof o.ip === 'string' && o.ip !== '' ? o.ip : '127.0.0.1',
    // 499 (the client left) says nothing of what the gateway decided.
    recorded: status === null || status === 499 ? null : outcomeOf(status, code),
  }
}

function csvCells(row: string): string[] {
  const cells: string[] = []
  let cur = ''
  let quoted = false
  for (let i = 0; i < row.length; i++) {
    const c = row[i]!
    if (quoted) {
      if (c === '"' && row[i + 1] === '"') ((cur += '"'), i++)
      else if (c === '"') quoted = false
      else cur += c
    } else if (c === '"') quoted = true
    else if (c === ',') (cells.push(cur.trim()), (cur = ''))
    else cur += c
  }
  cells.push(cur.trim())
  return cells
}

const METHOD = /^[A-Z]+$/

function fromCsv(lines: string[]): TraceEntry[] {
  const header = csvCells(lines[0]!).map((h) => h.toLowerCase())
  const col = (name: string) => header.indexOf(name)
  const [time, app, route, path, method, ip] = ['time', 'app', 'route', 'path', 'method', 'ip'].map(col) as number[]
  if (time === -1 || (route === -1 && path === -1))
    throw new TraceError(`line 1: a CSV trace needs a header naming 'time' and 'route' (or 'path'); found ${lines[0]}`)
  const out: TraceEntry[] = []
  for (let i = 1; i < lines.length; i++) {
    if (lines[i]!.trim() === '') continue
    const cells = csvCells(lines[i]!)
    const cell = (n: number) => (n === -1 ? '' : (cells[n] ?? ''))
    let m = cell(method!).toUpperCase() || 'GET'
    let target = cell(path!)
    if (target === '') {
      // A route id: `GET /orders/{id}` (methods joined by commas: the first), or a bare pattern.
      const r = cell(route!)
      const sp = r.indexOf(' ')
      const first = sp === -1 ? '' : r.slice(0, sp).split(',')[0]!
      if (METHOD.test(first)) m = cell(method!).toUpperCase() || first
      target = samplePath(sp !== -1 && METHOD.test(first) ? r.slice(sp + 1).split(' ')[0]! : r)
    }
    if (!target.startsWith('/')) throw new TraceError(`line ${i + 1}: '${target}' is not a path (it must start with /)`)
    out.push({
      line: i + 1,
      time: timeOf(cell(time!), i + 1),
      method: m,
      target,
      app: cell(app!) || null,
      ip: cell(ip!) || '127.0.0.1',
      recorded: null,
    })
  }
  return out
}

export function parseTrace(text: string): TraceEntry[] {
  const lines = text.split(/\r?\n/)
  const first = lines.findIndex((l) => l.trim() !== '')
  if (first === -1) return []
  if (!lines[first]!.trimStart().startsWith('{')) return fromCsv(lines.slice(first))
  const out: TraceEntry[] = []
  lines.forEach((l, i) => {
    if (!l.trimStart().startsWith('{')) return
    let o: unknown
    try {
      o = JSON.parse(l)
    } catch {
      throw new TraceError(`line ${i + 1}: not a JSON object: ${l.slice(0, 80)}`)
    }
    const e = o !== null && typeof o === 'object' ? fromJsonLine(o as Record<string, unknown>, i + 1) : null
    if (e) out.push(e)
  })
  return out
}

const zero = (): Record<Outcome, number> => ({ admitted: 0, throttled: 0, refused: 0, failed: 0 })

// Replays `entries` (in time order; ties keep the file's order) on `gw`, whose clock follows them.
export async function simulate(gw: Gateway, entries: TraceEntry[]): Promise<Report> {
  const ordered = entries.map((e, i) => [e, i] as const).sort((a, b) => a[0].time - b[0].time || a[1] - b[1])
  const rows = new Map<string, ReportRow>()
  const skipped: Report['skipped'] = []
  const withRecorded = entries.some((e) => e.recorded !== null)
  for (const [e] of ordered) {
    if (e.time > gw.clock.now()) gw.clock.set(e.time)
    let r
    try {
      r = await gw.request(`${e.method} ${e.target}`, { ip: e.ip, ...(e.app !== null ? { as: e.app } : {}) })
    } catch (err) {
      skipped.push({ line: e.line, reason: (err as Error).message.split('\n')[0]! })
      continue
    }
    await r.response.arrayBuffer()
    const route = r.trace.route?.id ?? '(no route)'
    const key = `${e.app ?? '-'}\u0000${route}`
    let row = rows.get(key)
    if (!row) rows.set(key, (row = { app: e.app ?? '-', route, requests: 0, simulated: zero(), recorded: withRecorded ? zero() : null }))
    row.requests++
    row.simulated[outcomeOf(r.status, r.trace.gatewayError)]++
    if (row.recorded && e.recorded) row.recorded[e.recorded]++
  }
  const sorted = [...rows.values()].sort((a, b) => a.app.localeCompare(b.app) || a.route.localeCompare(b.route))
  const total = { requests: 0, simulated: zero(), recorded: withRecorded ? zero() : null }
  for (const row of sorted) {
    total.requests += row.requests
    for (const o of OUTCOMES) {
      total.simulated[o] += row.simulated[o]
      if (total.recorded && row.recorded) total.recorded[o] += row.recorded[o]
    }
  }
  return { rows: sorted, skipped, total }
}

// The report as a table (≤ 100 columns for ordinary names): simulated counts, and the recorded
// ones beside them when the trace had them (`=` when they agree).
export function renderReport(report: Report): string {
  const head = ['app', 'route', 'requests', 'admitted', 'throttled', 'refused', 'failed']
  const cells = (r: { requests: number; simulated: Record<Outcome, number>; recorded: Record<Outcome, number> | null }) =>
    OUTCOMES.map((o) =>
      r.recorded === null ? String(r.simulated[o]) : `${r.simulated[o]}${r.recorded[o] === r.simulated[o] ? ' =' : ` (was ${r.recorded[o]})`}`,
    )
  const table = [
    head,
    ...report.rows.map((r) => [r.app, r.route, String(r.requests), ...cells(r)]),
    ['total', '', String(report.total.requests), ...cells(report.total)],
  ]
  const widths = head.map((_, i) => Math.max(...table.map((row) => row[i]!.length)))
  const lines = table.map((row) =>
    row
      .map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd(),
  )
  let out = `${lines.join('\n')}\n`
  if (report.total.recorded !== null) out += `(=: the recorded run answered the same; was N: it answered N)\n`
  for (const s of report.skipped) out += `skipped line ${s.line}: ${s.reason}\n`
  return out
}

export async function main(argv: string[]): Promise<number> {
  const parsed = commandArgs('simulate', argv, { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } })
  if (typeof parsed === 'string') return usage(parsed)
  const { values, positionals } = parsed
  if (values.help) {
    process.stdout.write(`${SIMULATE_USAGE}\n`)
    return 0
  }
  if (positionals.length !== 2) return usage(`gateway simulate: give a policy directory and a trace file. ${SIMULATE_USAGE}`)
  const [dir, tracePath] = positionals as [string, string]
  let entries: TraceEntry[]
  try {
    entries = parseTrace(readFileSync(tracePath, 'utf8'))
  } catch (err) {
    if (err instanceof TraceError) return usage(`gateway simulate: ${tracePath}: ${err.message}`)
    return usage(`gateway simulate: cannot read ${tracePath}: ${(err as Error).message}`)
  }
  if (entries.length === 0) return usage(`gateway simulate: ${tracePath} holds no requests`)
  let gw: Gateway
  try {
    gw = await loadGateway(dir, { now: Math.min(...entries.map((e) => e.time)), otherUpstreams: 'record' })
  } catch (err) {
    const message = (err as Error).message
    // The policies do not check: their diagnostics, as `gateway check` prints them.
    if (/:\d+:\d+: error/.test(message)) {
      process.stderr.write(`${message}\n`)
      return 1
    }
    return usage(`gateway simulate: ${message.split('\n')[0]}`)
  }
  try {
    const report = await simulate(gw, entries)
    process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : renderReport(report))
    return 0
  } finally {
    await gw.close()
  }
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2))
