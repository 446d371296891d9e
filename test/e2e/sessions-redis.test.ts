// Login sessions shared through Redis, through real gateways: two instances on the real Redis
// (127.0.0.1:6379, a --redis-prefix per run) honour and revoke each other's tokens, detect a
// refresh token reused on the other instance and sign a user out of the other instance
// (single-sign-on); `--workers 2 --redis` shares them between workers; a redis-server of the
// test's own, killed, makes every session check a quick 503 store_unavailable (never a pass),
// and sessions work again once it is back.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { randomUUID } from 'node:crypto'
import Redis from 'ioredis'
import {
  freePort,
  policyDir,
  removeDir,
  startGateway,
  startRecordingUpstream,
  startUpstream,
  type RunningGateway,
  type Upstream,
} from '../helpers/gateway.ts'
import { expectProblem, type Echo } from '../helpers/http.ts'
import { until } from '../helpers/poll.ts'
import { startRedis, type RedisServer } from '../helpers/redis-cluster.ts'

setDefaultTimeout(20_000)

const REDIS = 'redis://127.0.0.1:6379'
const PREFIX = `portcullis-test-sessions-${randomUUID()}:`

interface Tokens {
  access_token: string
  refresh_token: string
  user_info: Record<string, unknown>
}

let verifier: Upstream
let upstream: Upstream
let dir: string
const hits: Echo[] = []
const gateways: RunningGateway[] = []

beforeAll(() => {
  verifier = startUpstream(async (req) => {
    const { username, password } = (await req.json()) as { username: string; password: string }
    return password === `pw-${username}` ? Response.json({ id: username, name: `User ${username}` }) : new Response(null, { status: 401 })
  })
  upstream = startRecordingUpstream(hits)
  dir = policyDir({
    'sessions.policy': `
upstream verifier {
  target ${verifier.url}
  timeout 2s
}
upstream app { target ${upstream.url} }
session {
  verify via verifier /verify
  single-sign-on
}
match GET /ping { respond 200 text "pong" }
match POST /login { login }
match POST /refresh { refresh token }
match POST /logout { logout }
match GET /alive { token alive }
match GET /me {
  require session
  forward user as X-User-Json
  proxy app
}
`,
  })
})

afterAll(async () => {
  await Promise.all(gateways.map((g) => g.stop()))
  verifier?.stop()
  upstream?.stop()
  removeDir(dir)
  const redis = new Redis(REDIS, { lazyConnect: true, maxRetriesPerRequest: 1 })
  const keys = await redis.keys(`${PREFIX}*`)
  if (keys.length) await redis.del(...keys)
  redis.disconnect()
})

async function gateway(args: string[]): Promise<RunningGateway> {
  const g = await startGateway(dir, ['--no-watch', ...args])
  gateways.push(g)
  return g
}

const post = (g: RunningGateway, path: string, body: unknown, headers: Record<string, string> = {}) =>
  g.fetch(path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })

async function login(g: RunningGateway, name: string): Promise<Tokens> {
  const res = await post(g, '/login', { username: name, password: `pw-${name}` })
  expect(res.status).toBe(200)
  return (await res.json()) as Tokens
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
async function me(g: RunningGateway, token: string): Promise<number> {
  const res = await g.fetch('/me', { headers: bearer(token) })
  await res.arrayBuffer()
  return res.status
}

describe('two instances on one Redis', () => {
  let a: RunningGateway
  let b: RunningGateway
  beforeAll(async () => {
    const args = ['--redis', REDIS, '--redis-prefix', `${PREFIX}shared:`]
    ;[a, b] = await Promise.all([gateway(args), gateway(args)])
  })

  test('a token issued by one is honoured by the other, and a logout on the other revokes it everywhere', async () => {
    const t = await login(a, 'ada')
    expect(await me(b, t.access_token)).toBe(200)
    expect(JSON.parse(Buffer.from(hits.at(-1)!.headers['x-user-json']!, 'base64').toString('utf8'))).toEqual({ id: 'ada', name: 'User ada' })
    const alive = await b.fetch('/alive', { headers: bearer(t.access_token) })
    expect(((await alive.json()) as { active: boolean }).active).toBe(true)
    expect((await b.fetch('/logout', { method: 'POST', headers: bearer(t.access_token) })).status).toBe(204)
    expect(await me(a, t.access_token)).toBe(401)
    expect(await me(b, t.access_token)).toBe(401)
    await expectProblem(await post(a, '/refresh', { refresh_token: t.refresh_token }), 401, 'unauthenticated')
  })

  test('a refresh on one instance, then the old refresh token reused on the other: the whole login is revoked', async () => {
    const t = await login(a, 'grace')
    const res = await post(a, '/refresh', { refresh_token: t.refresh_token })
    expect(res.status).toBe(200)
    const n = (await res.json()) as Tokens
    expect(await me(b, n.access_token)).toBe(200)
    const reused = await post(b, '/refresh', { refresh_token: t.refresh_token })
    expect((await expectProblem(reused, 401, 'unauthenticated')).detail).toContain('used before')
    for (const g of [a, b]) {
      expect(await me(g, t.access_token)).toBe(401)
      expect(await me(g, n.access_token)).toBe(401)
    }
    await expectProblem(await post(a, '/refresh', { refresh_token: n.refresh_token }), 401, 'unauthenticated')
  })

  test('single-sign-on across instances: logging in on B ends the login made on A', async () => {
    const first = await login(a, 'linus')
    const second = await login(b, 'linus')
    expect(await me(a, first.access_token)).toBe(401)
    expect(await me(a, second.access_token)).toBe(200)
  })

  test('only the prefix holds session keys, each expiring; no token in any of them', async () => {
    const t = await login(a, 'margaret')
    const r = new Redis(REDIS)
    try {
      const keys = await r.keys(`${PREFIX}shared:session*`)
      expect(keys.length).toBeGreaterThanOrEqual(2)
      for (const k of keys) {
        expect(await r.pttl(k)).toBeGreaterThan(0)
        expect(k).not.toContain(t.access_token.slice(0, 21))
        const value = JSON.stringify((await r.type(k)) === 'hash' ? await r.hgetall(k) : await r.zrange(k, 0, -1))
        expect(value).not.toContain(t.access_token)
        expect(value).not.toContain(t.refresh_token)
      }
    } finally {
      await r.quit()
    }
  })
})

describe('--workers 2 with --redis', () => {
  test('a login on one worker is live on the other, a logout on one ends it on both', async () => {
    const port = await freePort()
    const w = await gateway(['--workers', '2', '--port', String(port), '--redis', REDIS, '--redis-prefix', `${PREFIX}workers:`])
    await w.waitFor('stderr', /2 workers/)
    const workerOf = (res: Response) => res.headers.get('x-request-id')!.split('-')[0]
    // New connections spread over the workers: log in until two workers have issued a login.
    const byWorker = new Map<string, Tokens>()
    await until(
      async () => {
        const res = await post(w, '/login', { username: 'ken', password: 'pw-ken' }, { connection: 'close' })
        byWorker.set(workerOf(res)!, (await res.json()) as Tokens)
        return byWorker.size
      },
      (n) => n >= 2,
      5_000,
      'logins on both workers',
    )
    // single-sign-on: only the last login is live, whichever worker asks.
    const tokens = [...byWorker.values()]
    const seen = new Set<string>()
    for (let i = 0; i < 20; i++) {
      const res = await w.fetch('/alive', { headers: { ...bearer(tokens.at(-1)!.access_token), connection: 'close' } })
      expect(res.status).toBe(200)
      await res.arrayBuffer()
      seen.add(workerOf(res)!)
    }
    expect(seen.size).toBe(2)
    const out = await w.fetch('/logout', { method: 'POST', headers: { ...bearer(tokens.at(-1)!.access_token), connection: 'close' } })
    expect(out.status).toBe(204)
    seen.clear()
    for (let i = 0; i < 20; i++) {
      const res = await w.fetch('/alive', { headers: { ...bearer(tokens.at(-1)!.access_token), connection: 'close' } })
      expect(res.status).toBe(401)
      await res.arrayBuffer()
      seen.add(workerOf(res)!)
    }
    expect(seen.size).toBe(2)
    await w.stop()
  })
})

describe('a Redis that goes away', () => {
  let redis: RedisServer
  let g: RunningGateway
  beforeAll(async () => {
    redis = await startRedis()
    g = await gateway(['--redis', redis.url, '--redis-prefix', `${PREFIX}down:`])
  })
  afterAll(async () => {
    await redis?.stop()
  })

  test('killed: every session call is a quick 503 store_unavailable, never a pass; back: sessions work again', async () => {
    const t = await login(g, 'edsger')
    expect(await me(g, t.access_token)).toBe(200)
    const before = hits.length
    await redis.kill()
    const timed = async (f: () => Promise<Response>) => {
      const t0 = performance.now()
      const res = await f()
      return { res, ms: performance.now() - t0 }
    }
    const calls = [
      () => g.fetch('/me', { headers: bearer(t.access_token) }),
      () => g.fetch(`/me?access_token=${t.access_token}`),
      () => g.fetch('/alive', { headers: bearer(t.access_token) }),
      () => post(g, '/login', { username: 'edsger', password: 'pw-edsger' }),
      () => post(g, '/refresh', { refresh_token: t.refresh_token }),
      () => g.fetch('/logout', { method: 'POST', headers: bearer(t.access_token) }),
    ]
    for (const call of calls) {
      const { res, ms } = await timed(call)
      await expectProblem(res, 503, 'store_unavailable')
      expect(ms).toBeLessThan(1_500)
    }
    expect(hits.length).toBe(before)
    // A gateway answer that needs no store is unaffected.
    expect((await g.fetch('/ping')).status).toBe(200)

    await redis.restart()
    // The restarted Redis kept nothing (no persistence): the old token is unknown, a new login works.
    const back = await until(
      () =>
        post(g, '/login', { username: 'edsger', password: 'pw-edsger' }).then(async (r) => (r.status === 200 ? ((await r.json()) as Tokens) : null)),
      (v) => v !== null,
      8_000,
      'logins after the restart',
    )
    expect(await me(g, back!.access_token)).toBe(200)
    expect(await me(g, t.access_token)).toBe(401)
  })
})
