// Rate decisions in Redis: one Lua script per decision, so a whole set of limits is checked and
// counted atomically, on every gateway sharing the Redis (the same answers as memory-limits.ts).
// The time is the Redis server's own (TIME), so gateways with skewed clocks agree; a calendar
// rule's `resetAt` is the caller's (computed from its UTC clock: skew only moves which window a
// request near the boundary falls into). Keys: the store prefix + the caller's key, which carries
// a hash tag shared by the decision's keys so they sit in one slot of a Redis Cluster.
import type { Cluster, Redis } from 'ioredis'
import { sameWindowPerKey, type LimitDecision, type LimitRule } from './store.ts'

// Decisions, one or many in one call. ARGV[1]: the call's rule lists, each written once
// however many decisions use it: lists separated by '|', rules by ';', a rule as
// `kind,limit,w` (kind 's' sliding with w its windowMs, 'c' calendar with w its resetAt in ms
// since the epoch). Then one argument per decision: the index of its list (from 1); a
// decision's n keys (n the length of its list) follow the previous decision's in KEYS. (Two
// arguments per call and one per decision: the gateway's Redis client spends its time per
// argument.) Each decision is checked and counted on its own, all in one atomic script run:
// concurrent requests on one connection share a call (see batchArgs) yet each is decided
// exactly as if alone. Reply, per decision: {admitted 1|0|-1, refusedBy (0-based, -1 when
// admitted), retryAfterMs, then per rule: the count before this request, resetMs}; admitted
// -1 means its keys hold something else than counters: nothing of that decision was written.
//
// A sliding window is a list of admission times, oldest first (RPUSH, and LPOP once they
// leave the window): a handful of O(1) commands per decision. Every limit is checked before
// any is counted, so a refused request writes nothing but the removal of times that left
// their window (a flood of refused requests is reads for Redis, and nothing for its
// replicas). A key met twice in one decision (two lines of one key and window, say a tier and
// a cap) is one counter: checked against each limit, counted once.
export const HIT_SCRIPT = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
-- Milliseconds with the microseconds as a fraction: an admission leaves its window at exactly
-- its time + w (whole milliseconds could free a slot up to 1 ms early).
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local stamp = string.format('%.3f', now)
local out = {}

local lists = {}
for list in string.gmatch(ARGV[1], '[^|]+') do
  local rules = {}
  for kind, limit, w in string.gmatch(list, '([sc]),(%d+),(%d+)') do
    rules[#rules + 1] = {kind, tonumber(limit), tonumber(w)}
  end
  lists[#lists + 1] = rules
end

local function decide(k, rules)
  local n = #rules
  local reply = {1, -1, 0}
  local seen = {}
  for i = 1, n do
    local key, kind, limit, w = KEYS[k + i], rules[i][1], rules[i][2], rules[i][3]
    local c, reset
    local prior = seen[key]
    if prior then
      c, reset = prior[1], prior[2]
    elseif kind == 's' then
      -- pcall: a key of another type is this decision's failure, not the whole call's.
      local head = redis.pcall('LINDEX', key, 0)
      if type(head) == 'table' and head.err then return {-1, -1, 0} end
      local cut = now - w
      while head and tonumber(head) <= cut do
        redis.call('LPOP', key)
        head = redis.call('LINDEX', key, 0)
      end
      c, reset = 0, w
      if head then
        c = redis.call('LLEN', key)
        reset = tonumber(head) + w - now
      end
    else
      local v = redis.pcall('GET', key)
      if type(v) == 'table' and v.err then return {-1, -1, 0} end
      c = 0
      if v then c = tonumber(v) end
      if not c then return {-1, -1, 0} end
      reset = w - now
    end
    seen[key] = {c, reset}
    if c >= limit and reply[2] == -1 then
      reply[1], reply[2], reply[3] = 0, i - 1, reset
      -- A slot frees when the oldest of the last \`limit\` admissions leaves the window.
      if kind == 's' then
        reply[3] = w
        if limit > 0 then reply[3] = math.max(1, tonumber(redis.call('LINDEX', key, c - limit)) + w - now) end
      end
    end
    reply[2 + 2 * i] = c
    reply[3 + 2 * i] = reset
  end
  if reply[1] ~= 1 then return reply end
  local counted = {}
  for i = 1, n do
    local key, w = KEYS[k + i], rules[i][3]
    if not counted[key] then
      counted[key] = true
      if rules[i][1] == 's' then
        redis.call('RPUSH', key, stamp)
        redis.call('PEXPIRE', key, w)
      elseif w > now then
        if redis.call('INCR', key) == 1 then redis.call('PEXPIREAT', key, w) end
      end
    end
  end
  return reply
end

local k = 0
for d = 2, #ARGV do
  local rules = lists[tonumber(ARGV[d])]
  local n = #rules
  local reply = decide(k, rules)
  out[#out + 1] = reply[1]
  out[#out + 1] = reply[2]
  out[#out + 1] = reply[3]
  for i = 1, n do
    out[#out + 1] = reply[2 + 2 * i] or 0
    out[#out + 1] = reply[3 + 2 * i] or 0
  end
  k = k + n
end
return out
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
export function hashTag(key: string): string {
  const open = key.indexOf('{')
  const close = open === -1 ? -1 : key.indexOf('}', open + 1)
  return close > open + 1 ? key.slice(open + 1, close) : key
}

// One decision's part of the script's keys and arguments (see HIT_SCRIPT), or a thrown Error
// for rules no store should be given (a caller's mistake, not an outage): limits and windows
// must be whole numbers, and the keys of one decision must share a hash tag (checked on every
// Redis, so a policy that works on one Redis also works on a Cluster; the prefix is free of
// braces, see redis-url.ts).
export function hitArgs(rules: readonly LimitRule[], prefix: string): { keys: string[]; list: string } {
  const keys: string[] = []
  let list = ''
  const tag = rules.length > 1 ? hashTag(rules[0]!.key) : ''
  for (const r of rules) {
    if (!Number.isSafeInteger(r.limit) || r.limit < 0) throw new RangeError(`rate limit ${r.limit} is not a whole number ≥ 0`)
    if (rules.length > 1 && hashTag(r.key) !== tag)
      throw new Error('the keys of one rate decision must share a hash tag ({…}) so they sit in one Redis Cluster slot')
    keys.push(prefix + r.key)
    if (list !== '') list += ';'
    if (rules.length > 1) sameWindowPerKey(rules, r)
    if (r.kind === 'sliding') {
      if (!Number.isSafeInteger(r.windowMs) || r.windowMs < 1) throw new RangeError(`rate window ${r.windowMs} ms is not a whole number ≥ 1`)
      list += `s,${r.limit},${r.windowMs}`
    } else {
      if (!Number.isSafeInteger(r.resetAt) || r.resetAt < 0) throw new RangeError(`rate window end ${r.resetAt} is not a whole number of ms`)
      list += `c,${r.limit},${r.resetAt}`
    }
  }
  return { keys, list }
}

// Decisions waiting for one script call.
export interface PendingHit {
  rules: readonly LimitRule[]
  keys: string[]
  list: string // its rules as the script's ARGV[1] writes them
  resolve(d: LimitDecision): void
  reject(err: unknown): void
}

// The script's keys and arguments for `batch`, as EVALSHA takes them after the key count.
export function batchArgs(batch: readonly PendingHit[]): { numKeys: number; keysAndArgs: string[] } {
  const keys: string[] = []
  const args: string[] = ['']
  const lists = new Map<string, number>()
  let written = ''
  for (const h of batch) {
    for (const k of h.keys) keys.push(k)
    let at = lists.get(h.list)
    if (at === undefined) {
      lists.set(h.list, (at = lists.size + 1))
      written = written === '' ? h.list : `${written}|${h.list}`
    }
    args.push(String(at))
  }
  args[0] = written
  return { numKeys: keys.length, keysAndArgs: keys.concat(args) }
}

// Hands each decision of `batch` its part of the script's reply (see HIT_SCRIPT), with
// memory-limits.ts's arithmetic.
export function settleBatch(batch: readonly PendingHit[], reply: unknown): void {
  const expected = batch.reduce((n, h) => n + 3 + 2 * h.rules.length, 0)
  if (!Array.isArray(reply) || reply.length !== expected || !reply.every((v) => typeof v === 'number')) {
    const err = new Error('the rate script answered something unexpected')
    for (const h of batch) h.reject(err)
    return
  }
  const r = reply as number[]
  let at = 0
  for (const { rules, resolve, reject } of batch) {
    const admitted = r[at] === 1
    if (r[at] === -1) reject(new Error('a rate key holds something else than a counter'))
    else
      resolve({
        admitted,
        refusedBy: r[at + 1]!,
        remaining: rules.map((rule, i) => Math.max(0, rule.limit - r[at + 3 + 2 * i]! - (admitted ? 1 : 0))),
        resetMs: rules.map((_, i) => Math.max(0, r[at + 4 + 2 * i]!)),
        retryAfterMs: Math.max(0, r[at + 2]!),
      })
    at += 3 + 2 * rules.length
  }
}
