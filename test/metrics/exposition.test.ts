// /metrics of a real gateway, read by a strict parser of the Prometheus text format (0.0.4):
// HELP and TYPE before a family's samples, families not interleaved, label values escaped,
// histograms with cumulative `le` buckets ending in +Inf = _count, and a _sum. Then the
// upstream families: target health, tries, failures and retries.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { closedPort, policyDir, removeDir, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'
import { until } from '../helpers/poll.ts'

interface Family {
  name: string
  type: string
  help: string
  samples: { name: string; labels: Record<string, string>; value: number }[]
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/

function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {}
  let i = 0
  while (i < text.length) {
    const eq = text.indexOf('=', i)
    if (eq === -1) throw new Error(`label without '=' in {${text}}`)
    const name = text.slice(i, eq)
    if (!LABEL.test(name)) throw new Error(`bad label name '${name}'`)
    if (name in out) throw new Error(`label '${name}' twice`)
    if (text[eq + 1] !== '"') throw new Error(`label value of '${name}' is not quoted`)
    let value = ''
    let j = eq + 2
    for (; ; j++) {
      if (j >= text.length) throw new Error(`unterminated value of '${name}'`)
      const c = text[j]!
      if (c === '"') break
      if (c === '\n') throw new Error('raw newline in a label value')
      if (c === '\\') {
        const e = text[++j]
        if (e === '\\') value += '\\'
        else if (e === '"') value += '"'
        else if (e === 'n') value += '\n'
        else throw new Error(`bad escape \\${e} in a label value`)
      } else value += c
    }
    out[name] = value
    i = j + 1
    if (i < text.length) {
      if (text[i] !== ',') throw new Error(`expected ',' after label '${name}'`)
      i++
    }
  }
  return out
}

function parseValue(text: string): number {
  if (text === '+Inf') return Infinity
  if (text === '-Inf') return -Infinity
  if (text === 'NaN') return NaN
  if (!/^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`bad sample value '${text}'`)
  return Number(text)
}

// The family a sample belongs to (histogram samples carry a suffix).
function familyOf(sample: string, families: Map<string, Family>): Family | undefined {
  if (families.has(sample)) return families.get(sample)
  const base = sample.replace(/_(bucket|sum|count)$/, '')
  const f = families.get(base)
  return f && f.type === 'histogram' ? f : undefined
}

export function parseExposition(text: string): Map<string, Family> {
  if (!text.endsWith('\n')) throw new Error('the exposition does not end with a newline')
  const families = new Map<string, Family>()
  let current: Family | null = null
  const closed = new Set<string>()
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') throw new Error('empty line')
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line)
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string]
      if (!NAME.test(name)) throw new Error(`bad metric name '${name}'`)
      let f = families.get(name)
      if (!f) {
        if (current) closed.add(current.name)
        f = { name, type: '', help: '', samples: [] }
        families.set(name, f)
        current = f
      } else if (f !== current || f.samples.length) throw new Error(`${kind} for ${name} after its samples or elsewhere`)
      if (kind === 'TYPE') {
        if (f.type) throw new Error(`two TYPE lines for ${name}`)
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) throw new Error(`bad type '${rest}'`)
        f.type = rest
      } else {
        if (f.help) throw new Error(`two HELP lines for ${name}`)
        f.help = rest
      }
      continue
    }
    if (line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m) throw new Error(`not a sample line: ${line}`)
    const f = familyOf(m[1]!, families)
    if (!f || !f.type) throw new Error(`sample ${m[1]} before its TYPE`)
    if (f !== current || closed.has(f.name)) throw new Error(`samples of ${f.name} are not together`)
    f.samples.push({ name: m[1]!, labels: parseLabels(m[2] ?? ''), value: parseValue(m[3]!) })
  }
  for (const f of families.values()) {
    if (!f.type) throw new Error(`${f.name} has no TYPE`)
    if (!f.help) throw new Error(`${f.name} has no HELP`)
    if (f.type === 'counter' && !f.name.endsWith('_total')) throw new Error(`counter ${f.name} does not end in _total`)
    if (f.type === 'histogram') checkHistogram(f)
  }
  return families
}

function checkHistogram(f: Family): void {
  const series = new Map<string, { buckets: [number, number][]; sum?: number; count?: number }>()
  for (const s of f.samples) {
    const { le, ...rest } = s.labels
    const key = JSON.stringify(rest)
    const e = series.get(key) ?? { buckets: [] }
    series.set(key, e)
    if (s.name === `${f.name}_bucket`) {
      if (le === undefined) throw new Error(`${f.name}_bucket without le`)
      e.buckets.push([parseValue(le), s.value])
    } else if (s.name === `${f.name}_sum`) e.sum = s.value
    else if (s.name === `${f.name}_count`) e.count = s.value
    else throw new Error(`${s.name} in histogram ${f.name}`)
  }
  for (const [key, e] of series) {
    if (e.sum === undefined || e.count === undefined) throw new Error(`${f.name}${key} lacks _sum or _count`)
    const last = e.buckets.at(-1)
    if (!last || last[0] !== Infinity) throw new Error(`${f.name}${key} does not end with le="+Inf"`)
    if (last[1] !== e.count) throw new Error(`${f.name}${key}: +Inf bucket ${last[1]} is not _count ${e.count}`)
    for (let i = 1; i < e.buckets.length; i++) {
      if (!(e.buckets[i]![0] > e.buckets[i - 1]![0])) throw new Error(`${f.name}${key}: le not increasing`)
      if (e.buckets[i]![1] < e.buckets[i - 1]![1]) throw new Error(`${f.name}${key}: buckets not cumulative`)
    }
  }
}

describe('the parser itself', () => {
  test('refuses what the format forbids', () => {
    expect(() => parseExposition('x_total 1\n')).toThrow('before its TYPE')
    expect(() => parseExposition('# HELP a_total h\n# TYPE a_total counter\na_total{l="a\nb"} 1\n')).toThrow()
    expect(() => parseExposition('# HELP a_total h\n# TYPE a_total counter\na_total{l="\\x"} 1\n')).toThrow('bad escape')
    expect(() => parseExposition('# HELP a_total h\n# TYPE a_total counter\n# HELP b h\n# TYPE b gauge\nb 1\na_total 1\n')).toThrow('not together')
    expect(() => parseExposition('# HELP h h\n# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n')).toThrow(
      'cumulative',
    )
    expect(parseExposition('# HELP a_total h\n# TYPE a_total counter\na_total{l="q\\"\\\\\\n"} 2\n').get('a_total')!.samples[0]!.labels.l).toBe(
      'q"\\\n',
    )
  })
})

let good: Upstream
let gw: RunningGateway
let dir: string
const downPort = closedPort()

beforeAll(async () => {
  good = startUpstream((req) => (new URL(req.url).pathname.endsWith('/flaky') ? new Response('busy', { status: 503 }) : new Response('ok')))
  dir = policyDir({
    'm.policy': `
upstream api {
  target ${good.url}
  target http://127.0.0.1:${downPort}
  retry 1 on connect-error, 503
  passive-health off
}
upstream checked {
  target http://127.0.0.1:${downPort}
  health GET /healthz every 1s timeout 200ms fails 1
}
match GET /api/{rest*} { proxy api }
match GET /checked { proxy checked }
match GET /label/{x} { respond 200 text "x" }
`,
  })
  gw = await startGateway(dir)
})
afterAll(async () => {
  await gw?.stop()
  good?.stop()
  removeDir(dir)
})

const metrics = async () => parseExposition(await (await gw.admin('/metrics')).text())
const value = (fams: Map<string, Family>, name: string, labels: Record<string, string>) =>
  fams.get(name)?.samples.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value

describe('/metrics', () => {
  test('is well-formed after traffic of every kind', async () => {
    for (let i = 0; i < 6; i++) await (await gw.fetch(`/api/${i}`)).text()
    await (await gw.fetch('/api/flaky')).text()
    await (await gw.fetch('/label/a%22b')).text()
    await (await gw.fetch('/nowhere')).text()
    const fams = await metrics()
    for (const name of [
      'gateway_requests_total',
      'gateway_request_duration_seconds',
      'gateway_upstream_duration_seconds',
      'gateway_reloads_total',
      'gateway_upstream_target_healthy',
      'gateway_upstream_attempts_total',
      'gateway_upstream_failures_total',
      'gateway_upstream_retries_total',
    ])
      expect(fams.has(name)).toBe(true)
  })

  test('counts tries, failures and retries per target', async () => {
    const fams = await metrics()
    const goodTarget = { upstream: 'api', target: good.url.replace(/\/$/, '') }
    const downTarget = { upstream: 'api', target: `http://127.0.0.1:${downPort}` }
    // Round robin over two targets: the requests that went to the dead one were retried on the good one.
    const downTries = value(fams, 'gateway_upstream_attempts_total', downTarget)!
    expect(downTries).toBeGreaterThan(0)
    expect(value(fams, 'gateway_upstream_failures_total', downTarget)).toBe(downTries)
    expect(value(fams, 'gateway_upstream_retries_total', goodTarget)).toBeGreaterThanOrEqual(1)
    // /api/flaky answered 503 from the good target: a failed try too.
    expect(value(fams, 'gateway_upstream_failures_total', goodTarget)).toBeGreaterThanOrEqual(1)
    expect(value(fams, 'gateway_upstream_target_healthy', goodTarget)).toBe(1)
  })

  test('shows a target that fails its health checks as 0', async () => {
    const healthy = await until(
      async () => value(await metrics(), 'gateway_upstream_target_healthy', { upstream: 'checked' }),
      (v) => v === 0,
      3_000,
      'the checked target to be reported unhealthy',
    )
    expect(healthy).toBe(0)
  })
})
