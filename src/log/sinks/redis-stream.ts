// `redis stream "KEY" [maxlen N]`: XADD on the gateway's Redis (--redis), a script call per batch,
// with `MAXLEN ~ N` (approximate trimming, cheap) when a maximum is given. Each stream entry has
// two fields: `request_id` and `entry` (the access-log entry as JSON). Delivery is at least
// once: after a failure a batch may be added again, so readers drop a request_id they have seen.
import { createHash } from 'node:crypto'
import { RedisClient } from 'bun'
import Redis, { Cluster } from 'ioredis'
import '../../store/tracing-channel.ts'
import { parseRedisUrl, type RedisTarget } from '../../store/redis-url.ts'
import type { Batch, Outcome, Transport } from './transport.ts'

const COMMAND_TIMEOUT_MS = 5_000
const CONNECT_TIMEOUT_MS = 2_000
const backoff = (times: number) => Math.min(times * 200, 2000)

// One script call per batch: the ids and the entries each travel as one newline-joined
// argument and are split in Redis. An XADD per entry from here would cost the gateway several
// times as much (every command and argument is encoded and answered on its own).
const ADD = `
local key, maxlen, ids, lines = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local i, j, n = 1, 1, 0
while i <= #ids do
  local a = string.find(ids, '\\n', i, true) or (#ids + 1)
  local b = string.find(lines, '\\n', j, true) or (#lines + 1)
  local id, entry = string.sub(ids, i, a - 1), string.sub(lines, j, b - 1)
  if maxlen == '' then
    redis.call('XADD', key, '*', 'request_id', id, 'entry', entry)
  else
    redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', 'request_id', id, 'entry', entry)
  end
  n, i, j = n + 1, a + 1, b + 1
end
return n`
// Entries per script call: a call holds Redis for about a millisecond per thousand.
const CHUNK = 1000

const ADD_SHA = createHash('sha1').update(ADD).digest('hex')

// Runs the script once for (ids, lines); rejects when Redis cannot be reached or refuses.
type Add = (key: string, maxlen: string, ids: string, lines: string) => Promise<unknown>
interface Connection {
  add: Add
  close(): void
}

// One Redis: Bun's own client, which costs the gateway about half of what ioredis does per
// batch. It reconnects when a delivery needs it (the sink's backoff paces that), never queues.
function bunConnection(url: string): Connection {
  const client = new RedisClient(url, {
    enableOfflineQueue: false,
    autoReconnect: false,
    connectionTimeout: CONNECT_TIMEOUT_MS,
    enableAutoPipelining: false,
  })
  client.onclose = () => {} // the sink reports failures, once
  let connecting: Promise<void> | null = null
  const ready = async () => {
    if (client.connected) return
    connecting ??= client.connect().finally(() => (connecting = null))
    await connecting
  }
  // Bun's client has no command timeout: a Redis that stops answering is given up on, and the
  // connection closed (so a late answer cannot land on the next command).
  const send = (command: string, args: string[]) => {
    let timer: ReturnType<typeof setTimeout> | undefined
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`no answer within ${COMMAND_TIMEOUT_MS} ms`))
        client.close()
      }, COMMAND_TIMEOUT_MS)
    })
    return Promise.race([client.send(command, args), late]).finally(() => clearTimeout(timer))
  }
  return {
    async add(key, maxlen, ids, lines) {
      await ready()
      try {
        return await send('EVALSHA', [ADD_SHA, '1', key, maxlen, ids, lines])
      } catch (err) {
        // A Redis that restarted (or was flushed) lost the script: send it whole once.
        if (!String((err as Error).message).includes('NOSCRIPT')) throw err
        return await send('EVAL', [ADD, '1', key, maxlen, ids, lines])
      }
    },
    close: () => client.close(),
  }
}

// A Cluster or a Sentinel-managed master: ioredis, as the store uses.
function ioredisConnection(target: Exclude<RedisTarget, { mode: 'single' }>): Connection {
  const node = { enableOfflineQueue: false, commandTimeout: COMMAND_TIMEOUT_MS, connectTimeout: CONNECT_TIMEOUT_MS, maxRetriesPerRequest: 0 }
  const client =
    target.mode === 'sentinel'
      ? new Redis({
          ...node,
          retryStrategy: backoff,
          sentinels: target.sentinels,
          name: target.name,
          username: target.username,
          password: target.password,
        })
      : new Cluster(target.nodes, {
          enableOfflineQueue: false,
          clusterRetryStrategy: backoff,
          redisOptions: { ...node, username: target.username, password: target.password },
        })
  client.on('error', () => {}) // the sink reports failures, once
  client.defineCommand('sinkStreamAdd', { numberOfKeys: 1, lua: ADD })
  const adder = client as unknown as { sinkStreamAdd: Add }
  // A connection still being made gets a moment (the first entries come right at start-up).
  const ready = async () => {
    if (client.status === 'ready') return
    if (client.status === 'end' || client.status === 'close') throw new Error(`the connection is ${client.status}`)
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`the connection is ${client.status}`)), CONNECT_TIMEOUT_MS)
      const done = (err?: Error) => {
        clearTimeout(timer)
        client.off('ready', ok)
        client.off('end', ended)
        if (err) reject(err)
        else resolve()
      }
      const ok = () => done()
      const ended = () => done(new Error('the connection ended'))
      client.once('ready', ok)
      client.once('end', ended)
    })
  }
  return {
    async add(key, maxlen, ids, lines) {
      await ready()
      return adder.sinkStreamAdd(key, maxlen, ids, lines)
    },
    close: () => client.disconnect(),
  }
}

export function redisStreamTransport(url: string, key: string, maxlen: number | null): Transport {
  const target = parseRedisUrl(url)
  if (typeof target === 'string') throw new Error(target)
  const conn = target.mode === 'single' ? bunConnection(target.url) : ioredisConnection(target)
  const limit = maxlen === null ? '' : String(maxlen)
  return {
    describe: `redis stream ${key}`,
    async deliver(batch: Batch): Promise<Outcome[]> {
      try {
        for (let i = 0; i < batch.lines.length; i += CHUNK)
          await conn.add(key, limit, batch.ids.slice(i, i + CHUNK).join('\n'), batch.lines.slice(i, i + CHUNK).join('\n'))
      } catch (err) {
        throw new Error(`redis: ${(err as Error).message}`)
      }
      return batch.lines.map(() => 'ok')
    },
    close() {
      conn.close()
    },
  }
}
