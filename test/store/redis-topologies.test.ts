// The Redis store over a Redis Cluster (3 masters with a replica each) and over a Sentinel-
// managed master with a replica, all started here on free ports: every Store method works and
// is shared by two instances; a lost subscriber node, a master failing over and a whole
// outage each end in StoreUnavailable within 1 s per call, then the store works again by itself.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { randomUUID } from 'node:crypto'
import Redis, { Cluster } from 'ioredis'
import { AppInput, toStoredApp, type StoredApp } from '../../src/store/app-record.ts'
import { parseOptions } from '../../src/cli/args.ts'
import { redisStore } from '../../src/store/redis.ts'
import { parseRedisUrl } from '../../src/store/redis-url.ts'
import { StoreUnavailable, type AppChange, type LimitRule, type Store } from '../../src/store/store.ts'
import { startRedis, startRedisCluster, startRedisSentinel, untilClusterOk, type RedisCluster, type RedisServer } from '../helpers/redis-cluster.ts'
import { untilTruthy } from '../helpers/poll.ts'

const PREFIX = `portcullis-test:topologies:${process.pid}:`

const app = (name: string): StoredApp =>
  toStoredApp(name, AppInput.parse({ key: `ak_${name}`, 'api-key': `secret-${name}` }), new Date('2026-01-02T03:04:05Z'))
const sliding = (key: string, limit: number): LimitRule => ({ kind: 'sliding', key, limit, windowMs: 60_000 })
const hit = (s: Store, rules: LimitRule[]) => s.hit(rules, Date.now())
const heardName = (heard: AppChange[], name: string) => heard.some((c) => 'name' in c && c.name === name)

// Hits `rules` until one is answered, checking that every failure on the way is a
// StoreUnavailable that came within 1 s; returns how many failed.
async function untilAnswered(s: Store, rules: LimitRule[], ms: number): Promise<number> {
  let failed = 0
  await untilTruthy(async () => {
    const t0 = Date.now()
    try {
      await hit(s, rules)
      return true
    } catch (err) {
      expect(err).toBeInstanceOf(StoreUnavailable)
      expect(Date.now() - t0).toBeLessThan(1_000)
      failed++
      return false
    }
  }, ms)
  return failed
}

// Every Store method through `url`, shared by two instances.
async function everyMethod(url: string): Promise<void> {
  const prefix = `${PREFIX}${randomUUID()}:`
  const [a, b] = [redisStore(url, { prefix }), redisStore(url, { prefix })]
  try {
    const heard: AppChange[] = []
    b.apps.watch((c) => heard.push(c))
    await Promise.all([a.ping(), b.ping()])
    await untilTruthy(() => a.live && b.live, 3_000)
    expect(heard).toContainEqual({ all: true })
    expect(await a.claimOnce('nonce', 60_000)).toBe(true)
    expect(await b.claimOnce('nonce', 60_000)).toBe(false)
    expect(await a.apps.put(app('shared'))).toBe(true)
    await untilTruthy(() => heardName(heard, 'shared'), 1_000)
    expect(await b.apps.get('shared')).toEqual(app('shared'))
    expect((await b.apps.list()).map((x) => x.name)).toEqual(['shared'])
    heard.length = 0
    expect(await a.apps.delete('shared')).toBe(true)
    await untilTruthy(() => heardName(heard, 'shared'), 1_000)
    expect(await b.apps.get('shared')).toBeNull()
    const rules = [sliding(`{${randomUUID()}}:s`, 20)]
    const ds = await Promise.all(Array.from({ length: 200 }, (_, i) => hit(i % 2 ? a : b, rules)))
    expect(ds.filter((d) => d.admitted).length).toBe(20)
  } finally {
    await Promise.all([a.close(), b.close()])
  }
}

describe('the --redis forms', () => {
  const problem = (args: string[]) => {
    try {
      parseOptions(args, {})
      return null
    } catch (err) {
      return (err as Error).message
    }
  }
  test.each([
    'redis://127.0.0.1:6379',
    'rediss://user:pw@redis.example:6380/2',
    'redis+cluster://10.0.0.1:7000,10.0.0.2:7001,[::1]:7002',
    'redis+cluster://:p%40ss@node-a,node-b:7001/',
    'redis+sentinel://s1:26379,s2/mymaster',
    'redis+sentinel://user:pw@s1/cache.main-1',
  ])('%s is accepted', (url) => {
    expect(problem(['--redis', url])).toBeNull()
  })
  test.each([
    ['http://x', /--redis must be a redis:\/\/, rediss:\/\/, redis\+cluster/],
    ['redis+cluster://', /--redis must be/],
    ['redis+cluster://a:1/0', /Cluster has no database/],
    ['redis+cluster://a:70000', /'a:70000' is not host:port/],
    ['redis+cluster://a:1,,b:2', /'' is not host:port/],
    ['redis+sentinel://s1:26379', /needs the master name/],
    ['redis+sentinel://s1/a b', /--redis must be|master name/],
    ['redis+cluster://%zz@a:1', /percent-encoded/],
  ])('%s is refused in one line', (url, message) => {
    const p = problem(['--redis', url])
    expect(p).toMatch(message)
    expect(p).not.toContain('\n')
  })
  test('with a Cluster the prefix has no braces (they would pick one slot for every key)', () => {
    expect(problem(['--redis', 'redis+cluster://a:1', '--redis-prefix', 'gw{1}:'])).toMatch(/--redis-prefix must not contain/)
    expect(problem(['--redis', 'redis://a:1', '--redis-prefix', 'gw{1}:'])).toBeNull()
    expect(() => redisStore('redis+cluster://127.0.0.1:1', { prefix: '{x}' })).toThrow(/--redis-prefix/)
  })
  test('the parts of each form reach the connection', () => {
    expect(parseRedisUrl('redis+sentinel://user:p%40ss@h1:1,h2/mymaster')).toEqual({
      mode: 'sentinel',
      sentinels: [
        { host: 'h1', port: 1 },
        { host: 'h2', port: 26379 },
      ],
      name: 'mymaster',
      username: 'user',
      password: 'p@ss',
    })
    expect(parseRedisUrl('redis+cluster://:pw@a,[::1]:7000')).toEqual({
      mode: 'cluster',
      nodes: [
        { host: 'a', port: 6379 },
        { host: '::1', port: 7000 },
      ],
      password: 'pw',
    })
  })
})

describe('Redis Cluster, 3 masters with a replica each', () => {
  let cluster: RedisCluster
  let raw: Cluster
  beforeAll(async () => {
    cluster = await startRedisCluster(3, 1)
    raw = new Cluster(cluster.ports.map((port) => ({ host: '127.0.0.1', port })))
    // Nodes go down on purpose here.
    raw.on('error', () => {})
  }, 30_000)
  afterAll(async () => {
    raw?.disconnect()
    await cluster?.stop()
  }, 30_000)

  const nodeOnPort = (port: number) => cluster.nodes.find((n) => n.port === port)!
  // Runs `f` with a plain connection to the node on `port`.
  async function onNode<T>(port: number, f: (r: Redis) => Promise<T>): Promise<T> {
    const r = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 0 })
    try {
      return await f(r)
    } finally {
      r.disconnect()
    }
  }
  // Restarts `node`, waits until the cluster is whole again and has a replica in sync for
  // every master.
  async function restore(node: RedisServer): Promise<void> {
    await node.restart()
    await untilClusterOk(cluster.ports)
    await untilTruthy(async () => {
      const roles = await Promise.all(cluster.ports.map((p) => onNode(p, (r) => r.info('replication'))))
      return roles.filter((i) => i.includes('role:slave') && i.includes('master_link_status:up')).length === 3
    }, 15_000)
  }

  test('every Store method works and is shared by two instances', async () => {
    await everyMethod(cluster.url)
  }, 15_000)

  test('the node holding the subscription dies: the subscription moves to another node and says all may have changed', async () => {
    const prefix = `${PREFIX}${randomUUID()}:`
    const s = redisStore(cluster.url, { prefix })
    let subscribedOn = 0
    try {
      const heard: AppChange[] = []
      s.apps.watch((c) => heard.push(c))
      await untilTruthy(() => s.live, 3_000)
      const channel = `${prefix}apps:changed`
      subscribedOn = await untilTruthy(async () => {
        for (const port of cluster.ports) {
          const [, n] = (await onNode(port, (r) => r.pubsub('NUMSUB', channel))) as [string, number]
          if (n > 0) return port
        }
        return 0
      }, 2_000)
      heard.length = 0
      await nodeOnPort(subscribedOn).kill()
      await untilTruthy(() => heard.some((c) => 'all' in c), 10_000)
      expect(s.live).toBe(true)
      // A change published now, through a node still up, is heard.
      const other = cluster.ports.find((p) => p !== subscribedOn)!
      await onNode(other, (r) => r.publish(channel, 'after'))
      await untilTruthy(() => heardName(heard, 'after'), 2_000)
    } finally {
      await s.close()
      if (subscribedOn) await restore(nodeOnPort(subscribedOn))
    }
  }, 60_000)

  test('a master fails over: calls fail fast, then the replica takes over and the counts are still there', async () => {
    const [a, b] = [redisStore(cluster.url, { prefix: PREFIX }), redisStore(cluster.url, { prefix: PREFIX })]
    let masterPort = 0
    try {
      const tag = `{${randomUUID()}}`
      const rules = [sliding(`${tag}:s`, 20)]
      const before = await Promise.all(Array.from({ length: 15 }, (_, i) => hit(i % 2 ? a : b, rules)))
      expect(before.every((d) => d.admitted)).toBe(true)
      const slot = await raw.cluster('KEYSLOT', `${PREFIX}${tag}:s`)
      const owner = (await raw.cluster('SLOTS')).find(([from, to]) => slot >= from && slot <= to)!
      masterPort = Number(owner[2]![1])
      // The replica has every count before its master goes.
      expect(await onNode(masterPort, (r) => r.wait(1, 1_000))).toBe(1)
      await nodeOnPort(masterPort).kill()
      expect(await untilAnswered(a, rules, 20_000)).toBeGreaterThan(0)
      await untilAnswered(b, rules, 5_000)
      // 15 + the two answered above (and any call that timed out but ran), shared by both.
      const counted = await raw.llen(`${PREFIX}${tag}:s`)
      expect(counted).toBeGreaterThanOrEqual(17)
      const after = await Promise.all(Array.from({ length: 20 }, (_, i) => hit(i % 2 ? a : b, rules)))
      // A call that timed out during the failover may still run after `counted` was read: it
      // takes a slot too. So these admit at most what was left, and the window ends exactly full.
      const admitted = after.filter((d) => d.admitted).length
      expect(admitted).toBeLessThanOrEqual(20 - counted)
      expect(await raw.llen(`${PREFIX}${tag}:s`)).toBe(20)
    } finally {
      await Promise.all([a.close(), b.close()])
      if (masterPort) await restore(nodeOnPort(masterPort))
    }
  }, 60_000)

  test('every node down: calls fail within 1 s; when they are back the store works again by itself', async () => {
    const s = redisStore(cluster.url, { prefix: PREFIX })
    try {
      const rules = [sliding(`{${randomUUID()}}:s`, 5)]
      expect((await hit(s, rules)).admitted).toBe(true)
      await Promise.all(cluster.nodes.map((n) => n.kill()))
      const t0 = Date.now()
      const results = await Promise.allSettled([s.ping(), hit(s, rules), s.claimOnce('n', 1_000), s.apps.get('x')])
      expect(Date.now() - t0).toBeLessThan(1_000)
      for (const r of results) expect(r.status === 'rejected' && r.reason).toBeInstanceOf(StoreUnavailable)
      await untilTruthy(() => !s.live, 2_000)
      await Promise.all(cluster.nodes.map((n) => n.restart()))
      await untilClusterOk(cluster.ports)
      await untilAnswered(s, rules, 15_000)
      await untilTruthy(() => s.live, 5_000)
    } finally {
      await s.close()
    }
  }, 60_000)
})

describe('Redis Sentinel: a master, a replica, one Sentinel', () => {
  let master: RedisServer
  let replica: RedisServer
  let sentinel: RedisServer
  beforeAll(async () => {
    master = await startRedis(['--repl-diskless-sync-delay', '0'])
    replica = await startRedis(['--repl-diskless-sync-delay', '0'])
    const r = new Redis(replica.url)
    await r.replicaof('127.0.0.1', master.port)
    await untilTruthy(async () => (await r.info('replication')).includes('master_link_status:up'), 5_000)
    r.disconnect()
    sentinel = await startRedisSentinel(master.port)
    // The Sentinel learns of the replica from the master.
    const s = new Redis({ host: '127.0.0.1', port: sentinel.port })
    await untilTruthy(async () => ((await s.call('SENTINEL', 'REPLICAS', 'mymaster')) as unknown[]).length === 1, 15_000)
    s.disconnect()
  }, 30_000)
  afterAll(async () => {
    await Promise.all([master, replica, sentinel].map((s) => s?.stop()))
  })

  test('every Store method works through redis+sentinel:// and is shared by two instances', async () => {
    await everyMethod(sentinel.url)
  }, 15_000)

  test('the master dies: calls fail fast until the Sentinel promotes the replica, then the store follows it', async () => {
    const s = redisStore(sentinel.url, { prefix: PREFIX })
    try {
      const rules = [sliding(`{${randomUUID()}}:s`, 10)]
      for (let i = 0; i < 6; i++) expect((await hit(s, rules)).admitted).toBe(true)
      const r = new Redis(replica.url)
      try {
        const m = new Redis(master.url)
        expect(await m.wait(1, 1_000)).toBe(1)
        m.disconnect()
        await master.kill()
        expect(await untilAnswered(s, rules, 20_000)).toBeGreaterThan(0)
        expect(await r.info('replication')).toContain('role:master')
        // 6 + the one answered above (and any call that timed out but ran).
        const counted = await r.llen(`${PREFIX}${rules[0]!.key}`)
        expect(counted).toBeGreaterThanOrEqual(7)
        const after = await Promise.all(Array.from({ length: 10 }, () => hit(s, rules)))
        expect(after.filter((d) => d.admitted).length).toBe(10 - counted)
      } finally {
        r.disconnect()
      }
      await untilTruthy(() => s.live, 5_000)
    } finally {
      await s.close()
    }
  }, 40_000)
})
