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
// since the epoch); a list that starts with '?' is a peek's (Store.peek): checked, never counted.
// Then, when the call has more than one list, one argument per decision: the
// index of its list (from 1); with one list, every decision uses it. A decision's n keys (n the
// length of its list) follow the previous decision's in KEYS. (The gateway's Redis client, and
// Redis itself, spend their time per argument.) Each decision is checked and counted on its
// own, all in one atomic script run: concurrent requests on one connection share a call (see
// batchArgs) yet each is decided exactly as if alone. Reply, per decision, as few numbers as it
// needs (each number costs the script and both clients): 0 (admitted) or i (refused by its
// i-th rule, from 1) followed by retryAfterMs, then per rule the count before this request and
// resetMs; or -1 alone: its keys hold something else than counters, and nothing of that
// decision was written.
//
// A sliding window is a list of admission times, oldest first (RPUSH, and LPOP once they
// leave the window): a handful of O(1) commands per decision. Every limit is checked before
// any is counted, so a refused request writes nothing but the removal of times that left
// their window (a flood of refused requests is reads for Redis, and nothing for its
// replicas). A key met twice in one decision (two lines of one key and window, say a tier and
// a cap) is one counter: checked against each limit, counted once.
//
// Measured per decision (redis-server 7.0 on the bench VM, timed inside one script run): a
// number given to redis.call costs about 0.5 µs to turn into text, so the commands take text
// ('0', and each rule's window as ARGV wrote it); LINDEX 0.5, LLEN 0.4, RPUSH with LPOP 1.3,
// PEXPIRE 1.0 µs; each reply number 0.3 µs.
export const HIT_SCRIPT = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
-- Milliseconds with the microseconds as a fraction: an admission leaves its window at exactly
-- its time + w (whole milliseconds could free a slot up to 1 ms early).
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local stamp = string.format('%.3f', now)

-- Each rule as {kind, limit, w, w as text}; a peek's list has peek = true.
local lists = {}
for list in string.gmatch(ARGV[1], '[^|]+') do
  local rules = {peek = string.byte(list, 1) == 63}
  for kind, limit, w in string.gmatch(list, '([sc]),(%d+),(%d+)') do
    rules[#rules + 1] = {kind, tonumber(limit), tonumber(w), w}
  end
  lists[#lists + 1] = rules
end

-- A sliding key's count once the times that left its window are dropped, and when its oldest
-- time leaves; nil when the key holds something else (pcall: that is this decision's failure,
-- not the whole call's).
local function slide(key, w)
  local head = redis.pcall('LINDEX', key, '0')
  if type(head) == 'table' then return nil end
  local cut = now - w
  local h = head and tonumber(head)
  while h and h <= cut do
    redis.call('LPOP', key)
    head = redis.call('LINDEX', key, '0')
    h = head and tonumber(head)
  end
  -- A list of something else than times is not a counter either.
  if head and not h then return nil end
  if not h then return 0, w end
  return redis.call('LLEN', key), h + w - now
end

local out, o = {}, 0
local counts, resets = {}, {}
local one = #ARGV == 1
local k, d = 0, 2
while k < #KEYS do
  local rules
  if one then
    rules = lists[1]
  else
    rules = lists[tonumber(ARGV[d])]
    d = d + 1
  end
  local n = #rules
  local seen = nil
  if n > 1 then seen = {} end
  local refusedBy, retry, failed = 0, 0, false
  for i = 1, n do
    local key, rule = KEYS[k + i], rules[i]
    local limit, w = rule[2], rule[3]
    local c, reset
    local prior = seen and seen[key]
    if prior then
      c, reset = prior[1], prior[2]
    elseif rule[1] == 's' then
      c, reset = slide(key, w)
    else
      local v = redis.pcall('GET', key)
      if type(v) == 'table' then
        c = nil
      elseif v then
        c = tonumber(v)
      else
        c = 0
      end
      reset = w - now
    end
    if not c then
      failed = true
      break
    end
    if seen then seen[key] = {c, reset} end
    if c >= limit and refusedBy == 0 then
      refusedBy, retry = i, reset
      -- A slot frees when the oldest of the last \`limit\` admissions leaves the window.
      if rule[1] == 's' then
        retry = w
        if limit > 0 then retry = math.max(1, tonumber(redis.call('LINDEX', key, c - limit)) + w - now) end
      end
    end
    counts[i], resets[i] = c, reset
  end
  if failed then
    o = o + 1
    out[o] = -1
  else
    if refusedBy == 0 then
      o = o + 1
      out[o] = 0
    else
      out[o + 1], out[o + 2] = refusedBy, retry
      o = o + 2
    end
    for i = 1, n do
      out[o + 1], out[o + 2] = counts[i], resets[i]
      o = o + 2
    end
    if refusedBy == 0 and not rules.peek then
      for i = 1, n do
        local key, rule = KEYS[k + i], rules[i]
        if not seen or seen[key] then
          if seen then seen[key] = false end
          if rule[1] == 's' then
            redis.call('RPUSH', key, stamp)
            redis.call('PEXPIRE', key, rule[4])
          elseif rule[3] > now then
            if redis.call('INCR', key) == 1 then redis.call('PEXPIREAT', key, rule[4]) end
          end
        end
      end
    end
  end
  k = k + n
end
return out
`

const COMMAND = 'portcullisLimitHit'

// The keys and arguments as one array: the client flattens it (no copy of a spread per call).
type RawHit = (numKeys: number, keysAndArgs: string[]) => Promise<unknown>

// Registers the script on `client` (ioredis sends EVALSHA, and EVAL when a server answers
// NOSCRIPT: after a restart, a SCRIPT FLUSH or a failover) and returns the call.
export function defineHit(client: Redis | Cluster): RawHit {
  client.defineCommand(COMMAND, { lua: HIT_SCRIPT })
  const fn = (client as unknown as Record<string, RawHit>)[COMMAND]!.bind(client)
  return function hitScript(numKeys, keysAndArgs) {
    return fn(numKeys, keysAndArgs)
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
  list: string // its rules as the script's ARGV[1] writes them ('?' first for a peek)
  peek: boolean
  resolve(d: LimitDecision): void
  reject(err: unknown): void
}

// The script's keys and arguments for `batch`, as EVALSHA takes them after the key count.
export function batchArgs(batch: readonly PendingHit[]): { numKeys: number; keysAndArgs: string[] } {
  const out: string[] = []
  const first = batch[0]?.list ?? ''
  let one = true
  for (const h of batch) {
    for (const k of h.keys) out.push(k)
    if (h.list !== first) one = false
  }
  const numKeys = out.length
  // One list (a route's requests, the usual batch): no index per decision.
  if (one) {
    out.push(first)
    return { numKeys, keysAndArgs: out }
  }
  const lists = new Map<string, number>()
  const at: string[] = []
  for (const h of batch) {
    let i = lists.get(h.list)
    if (i === undefined) lists.set(h.list, (i = lists.size + 1))
    at.push(String(i))
  }
  out.push([...lists.keys()].join('|'), ...at)
  return { numKeys, keysAndArgs: out }
}

// Hands each decision of `batch` its part of the script's reply (see HIT_SCRIPT), with
// memory-limits.ts's arithmetic; a reply of another shape rejects them all.
export function settleBatch(batch: readonly PendingHit[], reply: unknown): void {
  const starts = Array.isArray(reply) && reply.every((v) => typeof v === 'number') ? offsets(batch, reply as number[]) : null
  if (starts === null) {
    const err = new Error('the rate script answered something unexpected')
    for (const h of batch) h.reject(err)
    return
  }
  const r = reply as number[]
  for (let d = 0; d < batch.length; d++) {
    const { rules, peek, resolve, reject } = batch[d]!
    const at = starts[d]!
    const status = r[at]!
    if (status === -1) {
      reject(new Error('a rate key holds something else than a counter'))
      continue
    }
    const admitted = status === 0
    const counted = admitted && !peek ? 1 : 0
    const remaining: number[] = []
    const resetMs: number[] = []
    for (let i = 0, j = admitted ? at + 1 : at + 2; i < rules.length; i++, j += 2) {
      remaining.push(Math.max(0, rules[i]!.limit - r[j]! - counted))
      resetMs.push(Math.max(0, r[j + 1]!))
    }
    resolve({ admitted, refusedBy: status - 1, remaining, resetMs, retryAfterMs: admitted ? 0 : Math.max(0, r[at + 1]!) })
  }
}

// Where each decision's answer starts in the reply, or null when the reply does not hold
// exactly one answer per decision.
function offsets(batch: readonly PendingHit[], r: readonly number[]): number[] | null {
  const starts: number[] = []
  let at = 0
  for (const { rules } of batch) {
    if (at >= r.length) return null
    starts.push(at)
    const status = r[at]!
    if (status === -1) at += 1
    else if (status === 0) at += 1 + 2 * rules.length
    else if (Number.isInteger(status) && status >= 1 && status <= rules.length) at += 2 + 2 * rules.length
    else return null
  }
  return at === r.length ? starts : null
}
