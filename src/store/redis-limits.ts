// Rate decisions in Redis: one Lua script per decision, so a whole set of limits is checked and
// counted atomically, on every gateway sharing the Redis (the same answers as memory-limits.ts).
// The time is the Redis server's own (TIME), so gateways with skewed clocks agree; a calendar
// rule's `resetAt` is the caller's (computed from its UTC clock: skew only moves which window a
// request near the boundary falls into). Keys: the store prefix + the caller's key, which carries
// a hash tag shared by the decision's keys so they sit in one slot of a Redis Cluster.
import type { Cluster, Redis } from 'ioredis'
import type { LimitDecision, LimitRule } from './store.ts'

// KEYS[i]: rule i's key. ARGV[1]: the request's member; then three per rule: kind ('s' sliding,
// 'c' calendar), limit, then windowMs (sliding) or resetAt (calendar, ms since the epoch).
// Reply: {admitted 1|0, refusedBy (0-based, -1 when admitted), retryAfterMs, then per rule: the
// count before this request, resetMs}. Every error is raised before the first count is written.
export const HIT_SCRIPT = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local reply = {1, -1, 0}
for i = 1, #KEYS do
  local key, kind = KEYS[i], ARGV[3 * i - 1]
  local limit, w = tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])
  local c, reset
  if kind == 's' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - w)
    c = redis.call('ZCARD', key)
    reset = w
    if c > 0 then reset = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2]) + w - now end
    if c >= limit and reply[2] == -1 then
      reply[1], reply[2], reply[3] = 0, i - 1, w
      -- A slot frees when the oldest of the last \`limit\` admissions leaves the window.
      if limit > 0 then reply[3] = tonumber(redis.call('ZRANGE', key, c - limit, c - limit, 'WITHSCORES')[2]) + w - now end
    end
  else
    local v = redis.call('GET', key)
    c = 0
    if v then c = tonumber(v) end
    if not c then return redis.error_reply('ERR a rate counter holds something else than a number') end
    reset = w - now
    if c >= limit and reply[2] == -1 then reply[1], reply[2], reply[3] = 0, i - 1, reset end
  end
  reply[2 + 2 * i] = c
  reply[3 + 2 * i] = reset
end
if reply[1] == 1 then
  local stamp = string.format('%.0f', now)
  for i = 1, #KEYS do
    local key, w = KEYS[i], tonumber(ARGV[3 * i + 1])
    if ARGV[3 * i - 1] == 's' then
      -- Members are unique per request; one seen again (the same id twice) still counts.
      local m, j = stamp .. '-' .. ARGV[1], 0
      while redis.call('ZADD', key, now, m) == 0 do
        j = j + 1
        m = stamp .. '-' .. ARGV[1] .. '#' .. j
      end
      redis.call('PEXPIRE', key, w)
    elseif w > now then
      if redis.call('INCR', key) == 1 then redis.call('PEXPIREAT', key, w) end
    end
  end
end
return reply
`

const COMMAND = 'portcullisLimitHit'

type RawHit = (numKeys: number, ...keysAndArgs: string[]) => Promise<unknown>

// Registers the script on `client` (ioredis sends EVALSHA, and EVAL when a server answers
// NOSCRIPT: after a restart, a SCRIPT FLUSH or a failover) and returns the call.
export function defineHit(client: Redis | Cluster): RawHit {
  client.defineCommand(COMMAND, { lua: HIT_SCRIPT })
  const fn = (client as unknown as Record<string, RawHit>)[COMMAND]!.bind(client)
  return function hitScript(numKeys, ...keysAndArgs) {
    return fn(numKeys, ...keysAndArgs)
  }
}

// Redis's rule for the part of a key that picks its cluster slot.
function hashTag(key: string): string {
  const open = key.indexOf('{')
  const close = open === -1 ? -1 : key.indexOf('}', open + 1)
  return close > open + 1 ? key.slice(open + 1, close) : key
}

// The script's keys and arguments for `rules`, or a thrown Error for rules no store should be
// given (a caller's mistake, not an outage): limits and windows must be whole numbers, and the
// keys of one decision must share a hash tag (checked on every Redis, so a policy that works on
// one Redis also works on a Cluster; the prefix is free of braces, see redis-url.ts).
export function hitArgs(rules: readonly LimitRule[], member: string, prefix: string): string[] {
  const keys: string[] = []
  const args: string[] = [member]
  const tag = hashTag(rules[0]!.key)
  for (const r of rules) {
    if (!Number.isSafeInteger(r.limit) || r.limit < 0) throw new RangeError(`rate limit ${r.limit} is not a whole number ≥ 0`)
    if (rules.length > 1 && hashTag(r.key) !== tag)
      throw new Error('the keys of one rate decision must share a hash tag ({…}) so they sit in one Redis Cluster slot')
    keys.push(prefix + r.key)
    if (r.kind === 'sliding') {
      if (!Number.isSafeInteger(r.windowMs) || r.windowMs < 1) throw new RangeError(`rate window ${r.windowMs} ms is not a whole number ≥ 1`)
      args.push('s', String(r.limit), String(r.windowMs))
    } else {
      if (!Number.isSafeInteger(r.resetAt)) throw new RangeError(`rate window end ${r.resetAt} is not a whole number of ms`)
      args.push('c', String(r.limit), String(r.resetAt))
    }
  }
  return [...keys, ...args]
}

// The decision from the script's reply (see HIT_SCRIPT), with memory-limits.ts's arithmetic.
export function readDecision(rules: readonly LimitRule[], reply: unknown): LimitDecision {
  if (!Array.isArray(reply) || reply.length !== 3 + 2 * rules.length || !reply.every((v) => typeof v === 'number')) {
    throw new Error('the rate script answered something unexpected')
  }
  const r = reply as number[]
  const admitted = r[0] === 1
  return {
    admitted,
    refusedBy: r[1]!,
    remaining: rules.map((rule, i) => Math.max(0, rule.limit - r[3 + 2 * i]! - (admitted ? 1 : 0))),
    resetMs: rules.map((_, i) => Math.max(0, r[4 + 2 * i]!)),
    retryAfterMs: Math.max(0, r[2]!),
  }
}
