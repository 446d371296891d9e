// Redis through ioredis, as one Redis, a Redis Cluster or a Sentinel-managed master (the URL
// forms are in redis-url.ts): short command timeouts, every call settled within a deadline,
// reconnecting by itself, never queueing commands while disconnected (a down store is an
// answer, not a hang).
// Keys: PREFIX + `nonce:…` and PREFIX + `cache:…` (expiring; cache-redis.ts), PREFIX + `apps`
// (a hash: name → JSON record), PREFIX + the rate keys the caller names (redis-limits.ts); app
// changes are published on PREFIX + `apps:changed` to every instance.
// Login sessions: PREFIX + `session:…` and `session-user:…` (expiring; sessions-redis.ts).
// Script values: PREFIX + `kv:…` (kv-redis.ts).
import { unwatchDeadline, watchDeadline, type Timed } from '../runtime/client/deadlines.ts'
import Redis, { Cluster, type RedisOptions } from 'ioredis'
import './tracing-channel.ts'
import { StoredApp } from './app-record.ts'
import { batchArgs, defineHit, hashTag, hitArgs, settleBatch, type PendingHit } from './redis-limits.ts'
import { redisSessions } from './sessions-redis.ts'
import { redisAnswerCache } from './cache-redis.ts'
import { redisKeyValues } from './kv-redis.ts'
import { parseRedisUrl, type HostPort, type RedisTarget } from './redis-url.ts'
import { StoreUnavailable, type AppChange, type AppRecords, type LimitDecision, type LimitRule, type Store } from './store.ts'
import { failure, warn } from '../log/events.ts'

export const STORE_TIMEOUT_MS = 500
const CONNECT_TIMEOUT_MS = 1000
// Every call settles within this, whatever the connection is doing (a Cluster client retries a
// command on other nodes for a while): callers decide within a second.
const CALL_DEADLINE_MS = 900
// Rate decisions in one script call at most (see queueHit).
const MAX_BATCH = 64

export interface RedisStoreOptions {
  prefix?: string // default `portcullis:`; tests use one per run
}

const backoff = (times: number) => Math.min(times * 200, 2000)

const nodeOptions = {
  enableOfflineQueue: false,
  commandTimeout: STORE_TIMEOUT_MS,
  connectTimeout: CONNECT_TIMEOUT_MS,
  maxRetriesPerRequest: 0,
} satisfies RedisOptions

function connection(target: RedisTarget): Redis | Cluster {
  switch (target.mode) {
    case 'single':
      return new Redis(target.url, { ...nodeOptions, retryStrategy: backoff })
    case 'sentinel':
      return new Redis({
        ...nodeOptions,
        retryStrategy: backoff,
        sentinels: target.sentinels,
        name: target.name,
        username: target.username,
        password: target.password,
        sentinelRetryStrategy: backoff,
      })
    case 'cluster':
      // Node connections are the Cluster client's own (it gives them an offline queue, but
      // refuses commands for a node that is not connected when enableOfflineQueue is off).
      return new Cluster(target.nodes, {
        enableOfflineQueue: false,
        clusterRetryStrategy: backoff,
        slotsRefreshTimeout: CONNECT_TIMEOUT_MS,
        redisOptions: { ...nodeOptions, username: target.username, password: target.password },
      })
  }
}

// A record another writer stored can be anything: one that does not validate is skipped
// (and said once), never served half-read.
function parseApp(name: string, json: string | null): StoredApp | null {
  if (json === null) return null
  try {
    const r = StoredApp.safeParse(JSON.parse(json))
    if (r.success && r.data.name === name) return r.data
  } catch {}
  warn('store', `redis: the stored app '${name}' is not a valid record; ignored`, { app: name })
  return null
}

interface FeedEvents {
  // Subscribed (again): changes may have been missed before.
  up(): void
  down(): void
  message(name: string): void
  error(err: Error): void
}

// The app-change subscription. One Redis or a Sentinel master: one connection that reconnects
// by itself. A Cluster: one plain connection to any node (a PUBLISH reaches every node of a
// cluster), and when it is lost, the next node the Cluster client knows, or a seed.
function feed(target: RedisTarget, cluster: Cluster | null, channel: string, on: FeedEvents): { close(): void } {
  let closed = false
  let conn: Redis | null = null
  let attempt = 0
  let failures = 0
  const seeds: HostPort[] = target.mode === 'cluster' ? target.nodes : []

  function open(): void {
    if (closed) return
    if (target.mode === 'cluster') {
      const known = [...cluster!.nodes('all').map((n) => ({ host: n.options.host!, port: n.options.port! })), ...seeds]
      const node = known[attempt++ % known.length]!
      conn = new Redis({ ...nodeOptions, ...node, username: target.username, password: target.password, retryStrategy: () => null })
    } else {
      conn = connection(target) as Redis
    }
    const c = conn
    c.on('error', on.error)
    c.on('ready', function subscribeOnReady() {
      c.subscribe(channel).then(
        () => {
          failures = 0
          on.up()
        },
        // Not subscribed on a connection that is up: drop it and try again (or elsewhere).
        () => c.disconnect(true),
      )
    })
    c.on('close', on.down)
    c.on('message', (ch: string, name: string) => {
      if (ch === channel) on.message(name)
    })
    // A connection that gives up (a cluster node's) is replaced after a pause.
    c.once('end', function replaceEnded() {
      on.down()
      if (!closed) setTimeout(open, backoff(++failures))
    })
  }
  open()
  return {
    close() {
      closed = true
      conn?.disconnect()
    },
  }
}

export function redisStore(url: string, opts: RedisStoreOptions = {}): Store {
  const target = parseRedisUrl(url)
  if (typeof target === 'string') throw new Error(target)
  const prefix = opts.prefix ?? 'portcullis:'
  // Braces in the prefix would become every key's hash tag: one slot for all.
  if (target.mode === 'cluster' && /[{}]/.test(prefix)) throw new Error('--redis-prefix must not contain { or } with a Redis Cluster')
  const client = connection(target)
  const hitScript = defineHit(client)
  const appsKey = `${prefix}apps`
  const channel = `${prefix}apps:changed`
  const listeners = new Set<(c: AppChange) => void>()
  let subscribed = false
  let lastError = ''
  const onError = (err: Error) => {
    if (err.message !== lastError) failure('store', `redis: ${err.message}`)
    lastError = err.message
  }
  client.on('error', onError)
  client.on('ready', () => (lastError = ''))
  // Every (re)subscription may have missed changes: listeners reload all.
  const changes = feed(target, client instanceof Cluster ? client : null, channel, {
    up() {
      subscribed = true
      for (const l of listeners) l({ all: true })
    },
    down: () => (subscribed = false),
    message(name) {
      for (const l of listeners) l({ name })
    },
    error: onError,
  })

  // Resolves when the connection attempt under way succeeds or fails, or after its timeout;
  // one wait for all the calls that arrive meanwhile.
  let connecting: Promise<void> | null = null
  const connectOutcome = () =>
    (connecting ??= new Promise<void>((resolve) => {
      const events = ['ready', 'error', 'close', 'end'] as const
      const done = () => {
        clearTimeout(timer)
        for (const e of events) client.off(e, done)
        connecting = null
        resolve()
      }
      const timer = setTimeout(done, CONNECT_TIMEOUT_MS)
      for (const e of events) client.once(e, done)
    }))

  async function attempt<T>(f: () => Promise<T>): Promise<T> {
    if (client.status === 'connecting' || client.status === 'connect') await connectOutcome()
    if (client.status !== 'ready') throw new StoreUnavailable(`redis is ${client.status}`)
    try {
      return await f()
    } catch (err) {
      throw new StoreUnavailable(`redis: ${(err as Error).message}`)
    }
  }

  // The deadline is watched by the one shared clock of the upstream client, not a timer per call.
  function call<T>(f: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const watched: Timed = {
        deadline: performance.now() + CALL_DEADLINE_MS,
        deadlineSlot: -1,
        expire() {
          unwatchDeadline(watched)
          reject(new StoreUnavailable(`redis did not answer within ${CALL_DEADLINE_MS} ms`))
        },
      }
      watchDeadline(watched)
      attempt(f).then(
        (v) => {
          unwatchDeadline(watched)
          resolve(v)
        },
        (err) => {
          unwatchDeadline(watched)
          reject(err)
        },
      )
    })
  }

  // Rate decisions made in one event-loop turn go to Redis in one script call (one per hash
  // tag on a Cluster, whose keys must share a slot): the client's cost per call, not per
  // decision. Each decision is still decided on its own, atomically (see HIT_SCRIPT).
  const pending = new Map<string, PendingHit[]>()
  const argsOf = new WeakMap<readonly LimitRule[], { keys: string[]; list: string }>()
  let flushing = false
  const byTag = target.mode === 'cluster'
  function queueHit(h: PendingHit): void {
    const group = byTag ? hashTag(h.keys[0]!) : ''
    const list = pending.get(group)
    if (list === undefined) pending.set(group, [h])
    else list.push(h)
    if (list !== undefined && list.length >= MAX_BATCH) sendBatch(group)
    if (!flushing) {
      flushing = true
      setImmediate(flushHits)
    }
  }
  function flushHits(): void {
    flushing = false
    for (const group of [...pending.keys()]) sendBatch(group)
  }
  function sendBatch(group: string): void {
    const batch = pending.get(group)
    pending.delete(group)
    if (batch === undefined || batch.length === 0) return
    const { numKeys, keysAndArgs } = batchArgs(batch)
    call(() => hitScript(numKeys, keysAndArgs)).then(
      (reply) => settleBatch(batch, reply),
      (err: unknown) => {
        for (const h of batch) h.reject(err)
      },
    )
  }

  // A hit or a peek (see HIT_SCRIPT). A route's rules for one key value are one array, shared
  // by its requests (limits.ts): their script arguments are made once.
  function decide(rules: readonly LimitRule[], peek: boolean): Promise<LimitDecision> {
    if (rules.length === 0) return Promise.resolve({ admitted: true, refusedBy: -1, remaining: [], resetMs: [], retryAfterMs: 0 })
    let part = argsOf.get(rules)
    if (part === undefined)
      try {
        argsOf.set(rules, (part = hitArgs(rules, prefix)))
      } catch (err) {
        return Promise.reject(err)
      }
    const list = peek ? `?${part.list}` : part.list
    return new Promise<LimitDecision>((resolve, reject) => queueHit({ rules, keys: part.keys, list, peek, resolve, reject }))
  }

  const apps: AppRecords = {
    get: (name) => call(async () => parseApp(name, await client.hget(appsKey, name))),
    list: () =>
      call(async () => {
        const all = await client.hgetall(appsKey)
        return Object.entries(all).flatMap(([name, json]) => parseApp(name, json) ?? [])
      }),
    put: (app) =>
      call(async () => {
        const [first, second] = (await client.multi().hset(appsKey, app.name, JSON.stringify(app)).publish(channel, app.name).exec()) ?? []
        if (!first || !second || first[0] || second[0]) throw first?.[0] ?? second?.[0] ?? new Error('transaction aborted')
        return first[1] === 1
      }),
    delete: (name) =>
      call(async () => {
        const [first, second] = (await client.multi().hdel(appsKey, name).publish(channel, name).exec()) ?? []
        if (!first || !second || first[0] || second[0]) throw first?.[0] ?? second?.[0] ?? new Error('transaction aborted')
        return first[1] === 1
      }),
    watch(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
  }

  return {
    kind: 'redis',
    get live() {
      return subscribed && client.status === 'ready'
    },
    async ping() {
      await call(() => client.ping())
    },
    claimOnce: (key, ttlMs) => call(async () => (await client.set(`${prefix}nonce:${key}`, '1', 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX')) === 'OK'),
    apps,
    sessions: redisSessions(client, prefix, call),
    cache: redisAnswerCache(client, prefix, call),
    kv: redisKeyValues(client, prefix, call),
    // `now` is not used: the script reads the Redis server's clock (see redis-limits.ts).
    hit: (rules) => decide(rules, false),
    peek: (rules) => decide(rules, true),
    async close() {
      listeners.clear()
      changes.close()
      client.disconnect()
    },
  }
}
