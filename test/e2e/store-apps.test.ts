// Store apps across instances: two real gateways on one Redis (a key prefix of this run's
// own) see each other's admin changes within a second, with no reload; a gateway whose own
// Redis dies refuses store apps with 503 (file apps keep working) and recovers by itself;
// --workers with --redis share the store apps.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Redis from 'ioredis'
import { ADMIN_TOKEN, policyDir, removeDir, startGateway, startUpstream, type RunningGateway, type Upstream, freePort } from '../helpers/gateway.ts'
import { expectProblem } from '../helpers/http.ts'

const REDIS = 'redis://127.0.0.1:6379'
const PREFIX = `portcullis-test:store-apps:${process.pid}:${Date.now()}:`
const FILE_KEY = 'file-key-b41c9e07d2a8'
const KEYS = { s: 'store-key-6e1f0a9c3b7d', down: 'store-key-down-2a8c4e6f', w: 'store-key-workers-9d3b5f7a' }
const NEVER_SHOWN = [FILE_KEY, ...Object.values(KEYS)].flatMap((k) => [k, new Bun.CryptoHasher('sha256').update(k).digest('hex')])
const bearer = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }

let upstream: Upstream
let dir: string
const gateways: RunningGateway[] = []

beforeAll(() => {
  upstream = startUpstream()
  dir = policyDir({
    'main.policy': `
app file_app {
  key "ak_file"
  api-key env FILE_KEY
}
upstream echo { target ${upstream.url} }
match GET /k {
  require key
  set header X-App = app.name
  set header X-Code = app.meta.code
  proxy echo
}
`,
  })
})

afterAll(async () => {
  await Promise.all(gateways.map((g) => g.stop()))
  upstream?.stop()
  removeDir(dir)
  const r = new Redis(REDIS)
  const keys = await r.keys(`${PREFIX}*`)
  if (keys.length) await r.del(...keys)
  await r.quit()
})

async function gateway(args: string[], policies = dir): Promise<RunningGateway> {
  const g = await startGateway(policies, ['--no-watch', ...args], { FILE_KEY })
  gateways.push(g)
  return g
}

// Polls `probe` until `ok` holds of its answer; throws after `ms` with the last answer.
async function until<T>(probe: () => Promise<T>, ok: (v: T) => boolean, ms: number): Promise<{ value: T; after: number }> {
  const t0 = Date.now()
  for (;;) {
    const value = await probe()
    if (ok(value)) return { value, after: Date.now() - t0 }
    if (Date.now() - t0 > ms) throw new Error(`not within ${ms} ms; last: ${JSON.stringify(value)}`)
    await Bun.sleep(10)
  }
}

interface Seen {
  status: number
  code: string | null
  app?: string
  meta?: string
}

async function withKey(g: RunningGateway, key: string): Promise<Seen> {
  const res = await g.fetch('/k', { headers: { 'x-api-key': key } })
  if (res.status !== 200) {
    await res.body?.cancel()
    return { status: res.status, code: res.headers.get('gateway-error') }
  }
  const echo = (await res.json()) as { headers: Record<string, string> }
  return { status: 200, code: null, app: echo.headers['x-app'], meta: echo.headers['x-code'] }
}

const putApp = (g: RunningGateway, name: string, body: unknown) =>
  g.admin(`/apps/${name}`, { method: 'PUT', headers: bearer, body: JSON.stringify(body) })
const deleteApp = (g: RunningGateway, name: string) => g.admin(`/apps/${name}`, { method: 'DELETE', headers: bearer })

describe('two gateways on one Redis', () => {
  let a: RunningGateway
  let b: RunningGateway
  beforeAll(async () => {
    const args = ['--redis', REDIS, '--redis-prefix', `${PREFIX}shared:`]
    ;[a, b] = await Promise.all([gateway(args), gateway(args)])
    // Both are ready once their store answers and its notifications flow.
    for (const g of [a, b])
      await until(
        () => g.admin('/apps').then((r) => r.json() as Promise<{ store: { live: boolean } }>),
        (v) => v.store.live,
        5_000,
      )
  }, 20_000)

  test('/readyz is 200 on both, with the Redis store', async () => {
    for (const g of [a, b]) {
      const res = await g.admin('/readyz')
      expect(res.status).toBe(200)
      expect(((await res.json()) as { store: string }).store).toBe('redis')
    }
  })

  test("an app PUT through A is honoured by B within 1 s, and B's /apps lists it", async () => {
    expect((await withKey(b, KEYS.s)).status).toBe(401)
    const res = await putApp(a, 'partner_s', { key: 'ak_partner_s', 'api-key': KEYS.s, meta: { code: 'PS-1' } })
    expect(res.status).toBe(201)
    const { value } = await until(
      () => withKey(b, KEYS.s),
      (v) => v.status === 200,
      1_000,
    )
    expect(value).toEqual({ status: 200, code: null, app: 'partner_s', meta: 'PS-1' })
    const listed = (await (await b.admin('/apps')).json()) as { apps: { name: string; source: string }[] }
    expect(listed.apps.map((x) => `${x.source}:${x.name}`).sort()).toEqual(['file:file_app', 'store:partner_s'])
  })

  test("a change of the app's meta, then of its allow-ip, through A applies on B within 1 s", async () => {
    expect((await putApp(a, 'partner_s', { key: 'ak_partner_s', 'api-key': KEYS.s, meta: { code: 'PS-2' } })).status).toBe(200)
    await until(
      () => withKey(b, KEYS.s),
      (v) => v.meta === 'PS-2',
      1_000,
    )
    const fenced = { key: 'ak_partner_s', 'api-key': KEYS.s, meta: { code: 'PS-2' }, 'allow-ip': ['10.0.0.0/8'] }
    expect((await putApp(a, 'partner_s', fenced)).status).toBe(200)
    await until(
      () => withKey(b, KEYS.s),
      (v) => v.status === 403 && v.code === 'forbidden',
      1_000,
    )
    expect((await putApp(a, 'partner_s', { ...fenced, 'allow-ip': ['127.0.0.1'] })).status).toBe(200)
    await until(
      () => withKey(b, KEYS.s),
      (v) => v.status === 200,
      1_000,
    )
  })

  test('the same key id through B is refused while A’s app holds it (B reads the store, not its copy)', async () => {
    const res = await putApp(b, 'partner_t', { key: 'ak_partner_s' })
    const p = await expectProblem(res, 400, 'bad_request')
    expect(p.detail).toContain("the store app 'partner_s'")
  })

  test('a store app may not shadow a file app, through either gateway', async () => {
    for (const g of [a, b]) {
      const p = await expectProblem(await putApp(g, 'file_app', { 'api-key': KEYS.s }), 400, 'bad_request')
      expect(p.detail).toContain('file app')
    }
    expect((await withKey(b, FILE_KEY)).app).toBe('file_app')
  })

  test('DELETE through A: B refuses the key (401) within 1 s', async () => {
    expect((await withKey(b, KEYS.s)).status).toBe(200)
    expect((await deleteApp(a, 'partner_s')).status).toBe(204)
    const { value } = await until(
      () => withKey(b, KEYS.s),
      (v) => v.status === 401,
      1_000,
    )
    expect(value.code).toBe('unauthenticated')
    await expectProblem(await b.admin('/apps/partner_s'), 404, 'no_route')
    await expectProblem(await deleteApp(b, 'partner_s'), 404, 'no_route')
  })
})

describe('a Redis that dies and comes back', () => {
  let redis: Bun.Subprocess<'ignore', 'pipe', 'pipe'> | null = null
  let port: number
  let data: string
  let g: RunningGateway

  // Append-only with fsync on every write: what was stored survives the SIGKILL.
  async function startRedis(): Promise<void> {
    const proc = Bun.spawn(
      ['redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', data],
      { stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' },
    )
    redis = proc
    const reader = proc.stdout.getReader()
    let out = ''
    const deadline = Date.now() + 5_000
    while (!out.includes('Ready to accept connections')) {
      const timeout = Bun.sleep(Math.max(0, deadline - Date.now())).then(() => ({ done: true, value: undefined }) as const)
      const { done, value } = await Promise.race([reader.read(), timeout])
      if (done) throw new Error(`redis-server did not start:\n${out}`)
      out += new TextDecoder().decode(value)
    }
    reader.releaseLock()
    void proc.stdout.pipeTo(new WritableStream())
  }

  async function killRedis(): Promise<void> {
    redis?.kill('SIGKILL')
    await redis?.exited
    redis = null
  }

  beforeAll(async () => {
    port = await freePort()
    data = mkdtempSync(join(tmpdir(), 'portcullis-redis-'))
    await startRedis()
    g = await gateway(['--redis', `redis://127.0.0.1:${port}`, '--redis-prefix', `${PREFIX}own:`])
    await until(
      () => g.admin('/apps').then((r) => r.json() as Promise<{ store: { live: boolean } }>),
      (v) => v.store.live,
      5_000,
    )
  }, 20_000)
  afterAll(async () => {
    await killRedis()
    removeDir(data)
  })

  test('store-app keys get 503 store_unavailable within 1 s; file-app keys keep working; it recovers by itself', async () => {
    expect((await putApp(g, 'partner_d', { 'api-key': KEYS.down })).status).toBe(201)
    expect((await withKey(g, KEYS.down)).status).toBe(200)

    await killRedis()
    const { value } = await until(
      () => withKey(g, KEYS.down),
      (v) => v.status !== 200,
      1_000,
    )
    expect(value).toEqual({ status: 503, code: 'store_unavailable' })
    // A key no app has is no better off: the store might have it.
    expect(await withKey(g, 'no-such-key-0000')).toEqual({ status: 503, code: 'store_unavailable' })
    expect(await withKey(g, FILE_KEY)).toMatchObject({ status: 200, app: 'file_app' })
    // Readiness and admin changes say so.
    const ready = await g.admin('/readyz')
    expect(ready.status).toBe(503)
    expect(((await ready.json()) as { reason: string }).reason).toContain('redis')
    await expectProblem(await putApp(g, 'partner_e', { 'api-key': 'unused-key-0001' }), 503, 'store_unavailable')
    await expectProblem(await deleteApp(g, 'partner_d'), 503, 'store_unavailable')
    expect(((await (await g.admin('/apps')).json()) as { store: unknown }).store).toEqual({ kind: 'redis', live: false })

    await startRedis()
    // ioredis retries at most every 2 s; then the gateway reloads the store's apps.
    await until(
      () => withKey(g, KEYS.down),
      (v) => v.status === 200,
      8_000,
    )
    expect((await g.admin('/readyz')).status).toBe(200)
    expect((await deleteApp(g, 'partner_d')).status).toBe(204)
    expect(await withKey(g, KEYS.down)).toEqual({ status: 401, code: 'unauthenticated' })
  }, 20_000)
})

describe('--workers with --redis', () => {
  test('every worker honours and revokes a store app written through the admin API', async () => {
    const port = await freePort()
    const w = await gateway(['--workers', '2', '--port', String(port), '--redis', REDIS, '--redis-prefix', `${PREFIX}workers:`])
    await w.waitFor('stderr', /2 workers/)
    expect((await putApp(w, 'partner_w', { 'api-key': KEYS.w })).status).toBe(201)
    // Each worker prefixes its request ids with its own: both must have answered each way.
    const round = async () => {
      const answers = await Promise.all(Array.from({ length: 20 }, () => w.fetch('/k', { headers: { 'x-api-key': KEYS.w, connection: 'close' } })))
      for (const r of answers) await r.body?.cancel()
      const by = new Map<number, Set<string>>()
      for (const r of answers) by.set(r.status, (by.get(r.status) ?? new Set()).add(r.headers.get('x-request-id')!.split('-')[0]!))
      return by
    }
    const everyWorker = (status: number) => (by: Map<number, Set<string>>) => by.size === 1 && (by.get(status)?.size ?? 0) >= 2
    await until(round, everyWorker(200), 3_000)
    expect((await deleteApp(w, 'partner_w')).status).toBe(204)
    await until(round, everyWorker(401), 3_000)
  }, 20_000)
})

test('no API key or its hash in the output of any gateway', () => {
  expect(gateways.length).toBe(4)
  const out = gateways.flatMap((g) => [...g.stdout, ...g.stderr]).join('\n')
  for (const s of NEVER_SHOWN) expect(out).not.toContain(s)
})
