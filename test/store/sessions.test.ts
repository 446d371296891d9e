// The SessionStore contract: the same cases against the memory store and the real Redis
// (127.0.0.1:6379, a key prefix per store, removed afterwards), then what only Redis can show:
// two instances sharing logins, only hashes stored, every key expiring, a Redis Cluster, and
// a Redis that is not there.
import { afterAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import Redis from 'ioredis'
import { memoryStore } from '../../src/store/memory.ts'
import { redisStore } from '../../src/store/redis.ts'
import { MAX_USED, type SessionLifetimes, type SessionStore, type TokenPair } from '../../src/store/sessions.ts'
import { StoreUnavailable, type Store } from '../../src/store/store.ts'
import { freePort } from '../helpers/gateway.ts'
import { until } from '../helpers/poll.ts'
import { startRedisCluster } from '../helpers/redis-cluster.ts'

setDefaultTimeout(20_000)

const REDIS = 'redis://127.0.0.1:6379'
const PREFIX = `portcullis-test:sessions:${process.pid}:${Date.now()}:`
const LONG: SessionLifetimes = { ttlMs: 60_000, refreshMs: 600_000 }
const TOKEN = /^[A-Za-z0-9_-]{64}$/
const opened: Store[] = []

function open(make: () => Store): SessionStore {
  const s = make()
  opened.push(s)
  return s.sessions
}

afterAll(async () => {
  await Promise.all(opened.map((s) => s.close()))
  const r = new Redis(REDIS)
  const keys = await r.keys(`${PREFIX}*`)
  if (keys.length) await r.del(...keys)
  await r.quit()
})

const ada = { id: 'ada', info: { id: 'ada', name: 'Ada Lovelace', roles: ['admin'] } }
const bob = { id: 'bob', info: { sub: 'bob' } }
const alive = async (s: SessionStore, token: string) => (await s.check(token)) !== null
const pair = (r: unknown): TokenPair => {
  expect(typeof r).toBe('object')
  return r as TokenPair
}

let runs = 0
const kinds: [string, () => Store][] = [
  ['memory', memoryStore],
  ['redis', () => redisStore(REDIS, { prefix: `${PREFIX}${++runs}:` })],
]

describe.each(kinds)('%s store: sessions', (kind, make) => {
  test('a login issues two opaque tokens; the access token names the user and its time left', async () => {
    const s = open(make)
    const t = await s.login(ada, LONG, false)
    expect(t.accessToken).toMatch(TOKEN)
    expect(t.refreshToken).toMatch(TOKEN)
    expect(t.accessToken).not.toBe(t.refreshToken)
    expect(t.user).toEqual(ada)
    const active = (await s.check(t.accessToken))!
    expect(active.user).toEqual(ada)
    expect(active.expiresInMs).toBeGreaterThan(LONG.ttlMs - 2_000)
    expect(active.expiresInMs).toBeLessThanOrEqual(LONG.ttlMs)
    const again = await s.login(ada, LONG, false)
    expect(again.accessToken).not.toBe(t.accessToken)
  })

  test('anything but a live access token is no session: a refresh token, garbage, a forged sibling', async () => {
    const s = open(make)
    const t = await s.login(ada, LONG, false)
    expect(await s.check(t.refreshToken)).toBeNull()
    expect(await s.check('')).toBeNull()
    expect(await s.check('not a token')).toBeNull()
    expect(await s.check(t.accessToken + 'x')).toBeNull()
    // The family part of a real token with another secret part.
    expect(await s.check(t.accessToken.slice(0, 22) + 'A'.repeat(42))).toBeNull()
    expect(await s.check('A'.repeat(64))).toBeNull()
  })

  test('refresh rotates: a new pair, the old refresh token used up, earlier access tokens still valid', async () => {
    const s = open(make)
    const t = await s.login(ada, LONG, false)
    const n = pair(await s.refresh(t.refreshToken, LONG))
    expect(n.accessToken).toMatch(TOKEN)
    expect(n.refreshToken).not.toBe(t.refreshToken)
    expect(n.user).toEqual(ada)
    expect(await alive(s, n.accessToken)).toBe(true)
    expect(await alive(s, t.accessToken)).toBe(true)
    const n2 = pair(await s.refresh(n.refreshToken, LONG))
    expect(await alive(s, n2.accessToken)).toBe(true)
  })

  test('a used refresh token presented again revokes every token of that login, and only of that login', async () => {
    const s = open(make)
    const t = await s.login(ada, LONG, false)
    const other = await s.login(ada, LONG, false)
    const n = pair(await s.refresh(t.refreshToken, LONG))
    expect(await s.refresh(t.refreshToken, LONG)).toBe('reused')
    expect(await alive(s, t.accessToken)).toBe(false)
    expect(await alive(s, n.accessToken)).toBe(false)
    expect(await s.refresh(n.refreshToken, LONG)).toBe('unknown')
    expect(await s.refresh(t.refreshToken, LONG)).toBe('unknown')
    expect(await alive(s, other.accessToken)).toBe(true)
    expect(typeof (await s.refresh(other.refreshToken, LONG))).toBe('object')
  })

  test('refreshing with something else is unknown and revokes nothing', async () => {
    const s = open(make)
    const t = await s.login(ada, LONG, false)
    expect(await s.refresh(t.accessToken, LONG)).toBe('unknown')
    expect(await s.refresh(t.refreshToken.slice(0, 22) + 'B'.repeat(42), LONG)).toBe('unknown')
    expect(await s.refresh('garbage', LONG)).toBe('unknown')
    expect(await alive(s, t.accessToken)).toBe(true)
    expect(typeof (await s.refresh(t.refreshToken, LONG))).toBe('object')
  })

  test('concurrent refreshes with one token: one wins, the next is reuse and ends the login', async () => {
    const s = open(make)
    const t = await s.login(ada, LONG, false)
    const outcomes = await Promise.all(Array.from({ length: 10 }, () => s.refresh(t.refreshToken, LONG)))
    const won = outcomes.filter((o) => typeof o === 'object') as TokenPair[]
    expect(won.length).toBe(1)
    // The first reuse revokes the login; after it, the token is merely unknown.
    expect(outcomes.filter((o) => o === 'reused').length).toBe(1)
    expect(outcomes.filter((o) => o === 'unknown').length).toBe(8)
    expect(await alive(s, won[0]!.accessToken)).toBe(false)
  })

  test(`the last ${MAX_USED} used refresh tokens are remembered as used`, async () => {
    const s = open(make)
    const t = await s.login(ada, LONG, false)
    const refreshes = [t.refreshToken]
    for (let i = 0; i < MAX_USED + 3; i++) refreshes.push(pair(await s.refresh(refreshes.at(-1)!, LONG)).refreshToken)
    // Older ones are merely unknown (no revocation); the latest used one is reuse.
    expect(await s.refresh(refreshes[0]!, LONG)).toBe('unknown')
    expect(await s.refresh(refreshes[2]!, LONG)).toBe('unknown')
    expect(await s.refresh(refreshes.at(-2)!, LONG)).toBe('reused')
    expect(await s.refresh(refreshes.at(-1)!, LONG)).toBe('unknown')
  })

  test('logout revokes the login of the access token: both its tokens; only once', async () => {
    const s = open(make)
    const t = await s.login(ada, LONG, false)
    const other = await s.login(ada, LONG, false)
    expect(await s.logout(t.refreshToken)).toBe(false)
    expect(await s.logout(t.accessToken)).toBe(true)
    expect(await alive(s, t.accessToken)).toBe(false)
    expect(await s.refresh(t.refreshToken, LONG)).toBe('unknown')
    expect(await s.logout(t.accessToken)).toBe(false)
    expect(await s.logout('garbage')).toBe(false)
    expect(await alive(s, other.accessToken)).toBe(true)
  })

  test('logout after a refresh ends the refreshed login too', async () => {
    const s = open(make)
    const t = await s.login(ada, LONG, false)
    const n = pair(await s.refresh(t.refreshToken, LONG))
    expect(await s.logout(t.accessToken)).toBe(true)
    expect(await alive(s, n.accessToken)).toBe(false)
    expect(await s.refresh(n.refreshToken, LONG)).toBe('unknown')
  })

  test("single-sign-on: a new login revokes the user's older logins, not other users'", async () => {
    const s = open(make)
    const a1 = await s.login(ada, LONG, false)
    const a2 = await s.login(ada, LONG, false)
    const b1 = await s.login(bob, LONG, true)
    const a2r = pair(await s.refresh(a2.refreshToken, LONG))
    const a3 = await s.login(ada, LONG, true)
    for (const tok of [a1.accessToken, a2.accessToken, a2r.accessToken]) expect(await alive(s, tok)).toBe(false)
    expect(await s.refresh(a2r.refreshToken, LONG)).toBe('unknown')
    expect(await alive(s, a3.accessToken)).toBe(true)
    expect(await alive(s, b1.accessToken)).toBe(true)
    const a4 = await s.login(ada, LONG, true)
    expect(await alive(s, a3.accessToken)).toBe(false)
    expect(await alive(s, a4.accessToken)).toBe(true)
    // Without single-sign-on older logins stay.
    const a5 = await s.login(ada, LONG, false)
    expect(await alive(s, a4.accessToken)).toBe(true)
    expect(await alive(s, a5.accessToken)).toBe(true)
  })

  test('racing single-sign-on logins of one user leave exactly one alive', async () => {
    const s = open(make)
    const logins = await Promise.all(Array.from({ length: 8 }, () => s.login(ada, LONG, true)))
    const live = await Promise.all(logins.map((l) => alive(s, l.accessToken)))
    expect(live.filter(Boolean).length).toBe(1)
  })

  test('an access token expires after its ttl; the refresh token still gets a new one', async () => {
    const s = open(make)
    const short = { ttlMs: 200, refreshMs: 60_000 }
    const t0 = Date.now()
    const t = await s.login(ada, short, false)
    expect(await alive(s, t.accessToken)).toBe(true)
    await until(
      () => alive(s, t.accessToken),
      (v) => !v,
      3_000,
      'the access token expires',
    )
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150)
    const n = pair(await s.refresh(t.refreshToken, short))
    expect(await alive(s, n.accessToken)).toBe(true)
  })

  test('an expired access token still logs out while its login lives', async () => {
    const s = open(make)
    const short = { ttlMs: 100, refreshMs: 60_000 }
    const t = await s.login(ada, short, false)
    await until(
      () => alive(s, t.accessToken),
      (v) => !v,
      3_000,
      'the access token expires',
    )
    expect(await s.logout(t.accessToken)).toBe(true)
    expect(await s.refresh(t.refreshToken, short)).toBe('unknown')
  })

  test('a refresh token expires after its lifetime', async () => {
    const s = open(make)
    const short = { ttlMs: 100, refreshMs: 300 }
    const t = await s.login(ada, short, false)
    const n = pair(await s.refresh(t.refreshToken, short))
    await until(
      () => alive(s, n.accessToken),
      (v) => !v,
      3_000,
      'the access token expires',
    )
    const t0 = Date.now()
    await until(
      async () => (await s.check(n.accessToken)) === null && (await s.refresh(n.refreshToken, { ttlMs: 100, refreshMs: 60_000 })),
      (v) => v === 'unknown',
      3_000,
      'the refresh token expires',
    )
    expect(Date.now() - t0).toBeLessThan(3_000)
    expect(await s.logout(n.accessToken)).toBe(false)
  })

  if (kind === 'redis') redisOnly()
})

function redisOnly(): void {
  test('two instances on one prefix share logins, rotation, reuse detection and logout', async () => {
    const prefix = `${PREFIX}shared:`
    const a = open(() => redisStore(REDIS, { prefix }))
    const b = open(() => redisStore(REDIS, { prefix }))
    const t = await a.login(ada, LONG, false)
    expect((await b.check(t.accessToken))?.user).toEqual(ada)
    const n = pair(await b.refresh(t.refreshToken, LONG))
    expect(await alive(a, n.accessToken)).toBe(true)
    expect(await a.refresh(t.refreshToken, LONG)).toBe('reused')
    expect(await alive(b, n.accessToken)).toBe(false)
    const u = await b.login(ada, LONG, false)
    expect(await a.logout(u.accessToken)).toBe(true)
    expect(await alive(b, u.accessToken)).toBe(false)
    const v = await a.login(ada, LONG, false)
    await b.login(ada, LONG, true)
    expect(await alive(a, v.accessToken)).toBe(false)
  })

  test('only hashes are stored: no token and no user id in any key name or value; every key expires', async () => {
    const prefix = `${PREFIX}hashed:`
    const s = open(() => redisStore(REDIS, { prefix }))
    const user = { id: 'ada@example.com', info: { username: 'ada@example.com' } }
    const t = await s.login(user, LONG, true)
    const n = pair(await s.refresh(t.refreshToken, LONG))
    const r = new Redis(REDIS)
    try {
      const keys = await r.keys(`${prefix}*`)
      expect(keys.length).toBe(2)
      let dump = keys.join('\n')
      for (const k of keys) {
        const type = await r.type(k)
        dump += JSON.stringify(type === 'hash' ? await r.hgetall(k) : await r.zrange(k, 0, -1, 'WITHSCORES'))
        const ttl = await r.pttl(k)
        expect(ttl).toBeGreaterThan(0)
        expect(ttl).toBeLessThanOrEqual(LONG.refreshMs + 1_000)
      }
      for (const token of [t.accessToken, t.refreshToken, n.accessToken, n.refreshToken]) {
        expect(dump).not.toContain(token)
        expect(dump).not.toContain(token.slice(0, 21)) // the family part
      }
      expect(keys.join('\n')).not.toContain('ada@example.com')
    } finally {
      await r.quit()
    }
  })

  test('on a Redis Cluster (3 masters): every operation, shared by two instances', async () => {
    const cluster = await startRedisCluster(3)
    try {
      const prefix = `${PREFIX}cluster:`
      const a = open(() => redisStore(cluster.url, { prefix }))
      const b = open(() => redisStore(cluster.url, { prefix }))
      await until(
        () => a.login(ada, LONG, false).catch(() => null),
        (v) => v !== null,
        5_000,
        'the cluster answers',
      )
      const users = Array.from({ length: 6 }, (_, i) => ({ id: `user-${i}`, info: { id: `user-${i}` } }))
      for (const user of users) {
        const t = await a.login(user, LONG, false)
        expect((await b.check(t.accessToken))?.user).toEqual(user)
        const n = pair(await b.refresh(t.refreshToken, LONG))
        expect(await a.refresh(t.refreshToken, LONG)).toBe('reused')
        expect(await alive(b, n.accessToken)).toBe(false)
        const u = await b.login(user, LONG, false)
        const v = await a.login(user, LONG, true)
        expect(await alive(b, u.accessToken)).toBe(false)
        expect(await b.logout(v.accessToken)).toBe(true)
        expect(await alive(a, v.accessToken)).toBe(false)
      }
    } finally {
      await cluster.stop()
    }
  }, 40_000)

  test('a Redis that is not there: every call rejects with StoreUnavailable within about a second', async () => {
    const port = await freePort()
    const s = open(() => redisStore(`redis://127.0.0.1:${port}`, { prefix: `${PREFIX}dead:` }))
    const t0 = Date.now()
    const token = 'A'.repeat(64)
    const calls = [s.login(ada, LONG, false), Promise.resolve().then(() => s.check(token)), s.refresh(token, LONG), s.logout(token)]
    const results = await Promise.allSettled(calls)
    expect(Date.now() - t0).toBeLessThan(1_300)
    for (const r of results) {
      expect(r.status).toBe('rejected')
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(StoreUnavailable)
    }
  })
}
