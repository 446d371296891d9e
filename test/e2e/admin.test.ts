// The admin API of the real gateway process on 127.0.0.1: health, readiness (memory and
// Redis stores), route table, metrics, reload with its token rules, admin errors.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ADMIN_TOKEN, BUN, ROOT, policyDir, removeDir, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'

let up: Upstream
let gw: RunningGateway
let dir: string

const program = (greeting: string) => `upstream api { target ${up.url} }
match GET /api/{id} { rewrite path /items/{id}; proxy api }
match GET,HEAD /hello { respond 200 text "${greeting}" }
`

beforeAll(async () => {
  up = startUpstream()
  dir = policyDir({ 'main.policy': program('hello 1') })
  gw = await startGateway(dir, ['--no-watch'])
})
afterAll(async () => {
  await gw?.stop()
  up?.stop()
  removeDir(dir)
})

const post = (path: string, token?: string) =>
  gw.admin(path, { method: 'POST', headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })

async function expectProblem(res: Response, status: number, code: string): Promise<Record<string, unknown>> {
  expect(res.status).toBe(status)
  expect(res.headers.get('gateway-error')).toBe(code)
  expect(res.headers.get('content-type')).toStartWith('application/problem+json')
  const body = (await res.json()) as Record<string, unknown>
  expect(body.type).toBe(`urn:portcullis:error:${code}`)
  expect(body.status).toBe(status)
  expect(typeof body.detail).toBe('string')
  expect(body.instance).toBe(res.headers.get('x-request-id')!)
  return body
}

// Counter value of one exact series line in Prometheus text, or undefined.
function series(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `))
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1))
}

describe('health and readiness', () => {
  test('GET /healthz is 200 {"status":"ok"}', async () => {
    const res = await gw.admin('/healthz')
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ status: 'ok' })
  })

  test('GET /readyz is 200 with the embedded memory store', async () => {
    const res = await gw.admin('/readyz')
    expect(res.status).toBe(200)
    const body = (await res.json()) as Record<string, unknown>
    expect(body.status).toBe('ready')
    expect(body.store).toBe('memory')
  })

  test('GET /readyz is 200 with a Redis that answers', async () => {
    const d = policyDir({ 'main.policy': 'match GET /a { respond 200 text "a" }\n' })
    const g = await startGateway(d, ['--redis', 'redis://127.0.0.1:6379'])
    try {
      // Asked while the first connection is still being made, /readyz waits for it.
      const res = await g.admin('/readyz')
      expect(res.status).toBe(200)
      expect(((await res.json()) as { store: string }).store).toBe('redis')
    } finally {
      await g.stop()
      removeDir(d)
    }
  })

  test('GET /readyz is a prompt 503 with a reason when Redis does not answer', async () => {
    const d = policyDir({ 'main.policy': 'match GET /a { respond 200 text "a" }\n' })
    const g = await startGateway(d, ['--redis', 'redis://127.0.0.1:1'])
    try {
      for (let i = 0; i < 3; i++) {
        const t0 = Date.now()
        const res = await g.admin('/readyz', { signal: AbortSignal.timeout(5_000) })
        expect(Date.now() - t0).toBeLessThan(2_000)
        expect(res.status).toBe(503)
        const body = (await res.json()) as { status: string; reason: string }
        expect(body.status).toBe('not ready')
        expect(body.reason).toContain('redis')
        await Bun.sleep(300) // not waiting for an event: the probes are spread over the client's reconnect cycle
      }
      // Liveness is not readiness: the process still serves.
      expect((await g.admin('/healthz')).status).toBe(200)
      expect((await g.fetch('/a')).status).toBe(200)
    } finally {
      await g.stop()
      removeDir(d)
    }
  })
})

describe('routes and metrics', () => {
  test('GET /routes is the compiled route table as JSON', async () => {
    const res = await gw.admin('/routes')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toContain('application/json')
    const body = (await res.json()) as { version: number; routes: Record<string, unknown>[] }
    expect(typeof body.version).toBe('number')
    expect(body.routes.map((r) => [r.method, r.host, r.pattern, r.terminal])).toEqual([
      ['GET', null, '/api/{id}', 'proxy api'],
      ['GET,HEAD', null, '/hello', 'respond'],
    ])
    expect(body.routes[0]!.stages).toMatchObject({ rewrite: ['rewrite path'] })
    expect(String(body.routes[0]!.location)).toBe(`${join(dir, 'main.policy')}:2:11`)
  })

  test('GET /metrics counts requests by route, status and code', async () => {
    const before = await (await gw.admin('/metrics')).text()
    const ok = 'gateway_requests_total{route="GET /api/{id}",status="200",code=""}'
    const miss = 'gateway_requests_total{route="",status="404",code="no_route"}'
    const n0 = series(before, ok) ?? 0
    const m0 = series(before, miss) ?? 0
    // A request is counted once its body is delivered: read each one to the end.
    for (let i = 0; i < 3; i++) {
      const res = await gw.fetch(`/api/${i}`)
      expect(res.status).toBe(200)
      await res.arrayBuffer()
    }
    for (let i = 0; i < 2; i++) {
      const res = await gw.fetch('/nowhere')
      expect(res.status).toBe(404)
      await res.arrayBuffer()
    }
    const res = await gw.admin('/metrics')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toStartWith('text/plain')
    const text = await res.text()
    expect(text).toContain('# TYPE gateway_requests_total counter')
    expect(series(text, ok)).toBe(n0 + 3)
    expect(series(text, miss)).toBe(m0 + 2)
    expect(series(text, 'gateway_request_duration_seconds_count', '{route="GET /api/{id}"}')).toBe(n0 + 3)
    expect(series(text, 'gateway_upstream_duration_seconds_count', `{upstream="${up.url}"}`)).toBe(n0 + 3)
  })
})

describe('POST /reload', () => {
  test('401 without a token, 403 with a wrong one, both gateway errors', async () => {
    const none = await post('/reload')
    await expectProblem(none, 401, 'unauthenticated')
    expect(none.headers.get('www-authenticate')).toBe('Bearer')
    await expectProblem(await post('/reload', 'not-the-token-0123456789'), 403, 'forbidden')
    await expectProblem(
      await gw.admin('/reload', { method: 'POST', headers: { authorization: `Basic ${btoa(`x:${ADMIN_TOKEN}`)}` } }),
      401,
      'unauthenticated',
    )
  })

  test('200 {"version":N} with the token; the new program serves and gateway_reloads_total moves', async () => {
    const metrics0 = await (await gw.admin('/metrics')).text()
    const reloads0 = series(metrics0, 'gateway_reloads_total{result="applied"}') ?? 0
    expect(reloads0).toBeGreaterThanOrEqual(0)
    const v0 = ((await (await gw.admin('/routes')).json()) as { version: number }).version
    writeFileSync(join(dir, 'main.policy'), program('hello 2'))
    const res = await post('/reload', ADMIN_TOKEN)
    expect(res.status).toBe(200)
    const body = (await res.json()) as { version: number; changes: Record<string, Record<string, string[]>> }
    expect(Object.keys(body)).toEqual(['version', 'changes'])
    // What the reload changed: the route's directives, nothing else.
    expect(body.changes).toEqual({
      routes: { added: [], removed: [], changed: ['GET,HEAD /hello'] },
      upstreams: { added: [], removed: [], changed: [] },
      apps: { added: [], removed: [], changed: [] },
    })
    expect(body.version).toBeGreaterThan(v0)
    expect(await (await gw.fetch('/hello')).text()).toBe('hello 2')
    expect(((await (await gw.admin('/routes')).json()) as { version: number }).version).toBe(body.version)
    const metrics1 = await (await gw.admin('/metrics')).text()
    expect(series(metrics1, 'gateway_reloads_total{result="applied"}')).toBe(reloads0 + 1)
  })

  test('422 with diagnostics for a broken program, and the old program keeps serving', async () => {
    const good = await (await gw.fetch('/hello')).text()
    const v0 = ((await (await gw.admin('/routes')).json()) as { version: number }).version
    const failures0 = series(await (await gw.admin('/metrics')).text(), 'gateway_reloads_total{result="rejected"}') ?? 0
    writeFileSync(join(dir, 'main.policy'), `upstream api { target ${up.url} }\nmatch GET /hello {\n  proxy nowhere\n}\n`)
    try {
      const res = await post('/reload', ADMIN_TOKEN)
      expect(res.status).toBe(422)
      const body = (await res.json()) as { diagnostics: Record<string, unknown>[] }
      expect(body.diagnostics).toHaveLength(1)
      expect(body.diagnostics[0]).toMatchObject({ file: join(dir, 'main.policy'), line: 3, col: 9 })
      expect(String(body.diagnostics[0]!.message)).toContain("unknown upstream 'nowhere'")
      expect(await (await gw.fetch('/hello')).text()).toBe(good)
      expect((await gw.fetch('/api/1')).status).toBe(200)
      expect(((await (await gw.admin('/routes')).json()) as { version: number }).version).toBe(v0)
      expect(series(await (await gw.admin('/metrics')).text(), 'gateway_reloads_total{result="rejected"}')).toBe(failures0 + 1)
      await gw.waitFor('stderr', /main\.policy:3:9: error: unknown upstream 'nowhere'/)
    } finally {
      writeFileSync(join(dir, 'main.policy'), program(good))
    }
  })
})

describe('admin errors and binding', () => {
  test('an unknown admin path is a 404 gateway error', async () => {
    await expectProblem(await gw.admin('/nope'), 404, 'no_route')
  })

  test('a wrong method on a known path is a 405 with Allow', async () => {
    const res = await gw.admin('/reload')
    await expectProblem(res, 405, 'method_not_allowed')
    expect(res.headers.get('allow')).toBe('POST')
  })

  test('the admin API never echoes the admin token', async () => {
    for (const path of ['/healthz', '/readyz', '/routes', '/metrics', '/nope']) {
      expect(await (await gw.admin(path)).text()).not.toContain(ADMIN_TOKEN)
    }
    expect(await (await post('/reload', `${ADMIN_TOKEN}x`)).text()).not.toContain(ADMIN_TOKEN)
  })

  test('the admin listener is bound to 127.0.0.1 only', () => {
    const port = Number(new URL(gw.adminUrl).port)
    expect(new URL(gw.adminUrl).hostname).toBe('127.0.0.1')
    // /proc/net/tcp{,6} list listening sockets (state 0A) with their local address in hex.
    const listening: string[] = []
    for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
      if (!existsSync(file)) continue
      for (const row of readFileSync(file, 'utf8').split('\n').slice(1)) {
        const cols = row.trim().split(/\s+/)
        if (cols[3] !== '0A' || !cols[1]) continue
        const [addr, p] = cols[1].split(':')
        if (parseInt(p!, 16) === port) listening.push(addr!)
      }
    }
    if (!existsSync('/proc/net/tcp')) return
    expect(listening).toEqual(['0100007F']) // 127.0.0.1, and nothing on 0.0.0.0 or ::
  })

  test('with no --admin-token configured, POST /reload is refused with 403', async () => {
    const d = policyDir({ 'main.policy': 'match GET /a { respond 200 text "a" }\n' })
    const proc = Bun.spawn([BUN, join(ROOT, 'src/cli/main.ts'), '--policies', d, '--host', '127.0.0.1', '--port', '0', '--admin-port', '0'], {
      cwd: ROOT,
      stdin: 'ignore',
      stdout: 'ignore',
      stderr: 'pipe',
      env: { ...process.env, GATEWAY_ADMIN_TOKEN: '', GATEWAY_LOG_FORMAT: 'json' },
    })
    try {
      const reader = proc.stderr.getReader()
      let err = ''
      const deadline = Date.now() + 10_000
      while (!/admin API on (http:\/\/\S+)/.test(err) && Date.now() < deadline) {
        const { value, done } = await reader.read()
        if (done) break
        err += new TextDecoder().decode(value)
      }
      reader.releaseLock()
      const adminUrl = /admin API on (http:\/\/[^\s"]+)/.exec(err)?.[1]
      expect(adminUrl).toBeDefined()
      const attempts: Record<string, string>[] = [{}, { authorization: `Bearer ${ADMIN_TOKEN}` }, { authorization: 'Bearer ' }]
      for (const auth of attempts) {
        const res = await fetch(`${adminUrl}/reload`, { method: 'POST', headers: auth })
        await expectProblem(res, 403, 'forbidden')
      }
      expect((await fetch(`${adminUrl}/healthz`)).status).toBe(200)
    } finally {
      proc.kill('SIGTERM')
      expect(await proc.exited).toBe(0)
      removeDir(d)
    }
  })
})
