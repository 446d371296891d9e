// Login sessions in Redis (the rules are in sessions.ts), shared by every gateway on the same
// Redis and prefix. Keys, each expiring with what it holds:
//   PREFIX session:FAMILY    a hash: user (JSON), uk (the user key), r (the current refresh
//                            token's hash), rexp, used (hashes of used refresh tokens, comma-
//                            separated, the last MAX_USED), a:HASH → expiry per access token
//   PREFIX session-user:UK   a sorted set of the user's logins, scored by when each ends
// Every script reads and writes ONE key (one Redis Cluster slot) and uses the Redis server's
// clock, so gateways with skewed clocks agree on expiry. Rotation and reuse detection are one
// script on the family's key: two refreshes with one token cannot both succeed.
import type { Cluster, Redis } from 'ioredis'
import { MAX_USED, newFamily, sibling, tokenHash, tokenRef, userKey, type SessionStore, type SessionUser } from './sessions.ts'

// Every call settles within the store's deadline or rejects with StoreUnavailable (redis.ts).
export type Call = <T>(f: () => Promise<T>) => Promise<T>

const CLOCK = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function ms(n) return string.format('%.0f', n) end
`

// ARGV: user JSON, user key, access hash, refresh hash, ttl, refresh lifetime. → the login's end.
const CREATE = `${CLOCK}
local ttl, life = tonumber(ARGV[5]), tonumber(ARGV[6])
redis.call('HSET', KEYS[1], 'user', ARGV[1], 'uk', ARGV[2], 'r', ARGV[4], 'rexp', ms(now + life), 'used', '', 'a:' .. ARGV[3], ms(now + ttl))
redis.call('PEXPIRE', KEYS[1], math.max(ttl, life))
return ms(now + math.max(ttl, life))
`

// A user's index. ARGV: family, its end, '1' to answer the user's other live logins (single
// sign-on). Ended logins leave the index; the index lives as long as its last login.
const INDEX = `${CLOCK}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local older = {}
if ARGV[3] == '1' then older = redis.call('ZRANGE', KEYS[1], 0, -1) end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('PEXPIREAT', KEYS[1], redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
return older
`

// Before a refresh: the login's index entry will last as long as the refreshed login.
// ARGV: family, the longer lifetime.
const TOUCH = `${CLOCK}
redis.call('ZADD', KEYS[1], 'XX', ms(now + tonumber(ARGV[2]) + 1000), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2]
if last then redis.call('PEXPIREAT', KEYS[1], last) end
return 1
`

// ARGV: the access token's hash. → {user JSON, ms left} or nil.
const CHECK = `${CLOCK}
local v = redis.call('HMGET', KEYS[1], 'a:' .. ARGV[1], 'user')
if not v[1] or not v[2] then return nil end
local left = tonumber(v[1]) - now
if left <= 0 then return nil end
return {v[2], left}
`

// ARGV: presented refresh hash, new access hash, new refresh hash, ttl, refresh lifetime,
// MAX_USED. → {1, user JSON} rotated; {2} reused (the login is revoked); {0} unknown.
const ROTATE = `${CLOCK}
local f = redis.call('HMGET', KEYS[1], 'r', 'rexp', 'used', 'user')
if not f[1] or not f[4] then return {0} end
if f[1] ~= ARGV[1] then
  if f[3] and string.find(f[3], ARGV[1], 1, true) then
    redis.call('DEL', KEYS[1])
    return {2}
  end
  return {0}
end
if tonumber(f[2]) <= now then return {0} end
local used = f[3] or ''
if used == '' then used = ARGV[1] else used = used .. ',' .. ARGV[1] end
-- Hashes are 43 characters: the last MAX_USED of them, with their commas.
local keep = tonumber(ARGV[6]) * 44 - 1
if #used > keep then used = string.sub(used, #used - keep + 1) end
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 2) == 'a:' and tonumber(fields[i + 1]) <= now then redis.call('HDEL', KEYS[1], fields[i]) end
end
local ttl, life = tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('HSET', KEYS[1], 'r', ARGV[3], 'rexp', ms(now + life), 'used', used, 'a:' .. ARGV[2], ms(now + ttl))
if redis.call('PTTL', KEYS[1]) < math.max(ttl, life) then redis.call('PEXPIRE', KEYS[1], math.max(ttl, life)) end
return {1, f[4]}
`

// ARGV: the access token's hash (an expired one still ends its login). → 1 revoked, 0 none.
const LOGOUT = `
if redis.call('HEXISTS', KEYS[1], 'a:' .. ARGV[1]) == 1 then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`

const SCRIPTS = { CREATE, INDEX, TOUCH, CHECK, ROTATE, LOGOUT }
type Script = (key: string, ...args: string[]) => Promise<unknown>

// A stored user that does not parse (another writer's) is no session: refused, never served half-read.
function userOf(json: unknown): SessionUser | null {
  if (typeof json !== 'string') return null
  try {
    const u = JSON.parse(json) as SessionUser
    if (typeof u?.id === 'string' && typeof u.info === 'object' && u.info !== null) return u
  } catch {}
  return null
}

export function redisSessions(client: Redis | Cluster, prefix: string, call: Call): SessionStore {
  const run = {} as Record<keyof typeof SCRIPTS, Script>
  for (const [name, lua] of Object.entries(SCRIPTS)) {
    const command = `portcullisSession${name}`
    client.defineCommand(command, { numberOfKeys: 1, lua })
    const fn = (client as unknown as Record<string, Script>)[command]!.bind(client)
    run[name as keyof typeof SCRIPTS] = fn
  }
  const familyKey = (family: string) => `${prefix}session:${family}`
  const indexKey = (uk: string) => `${prefix}session-user:${uk}`

  return {
    login: (user, life, singleSignOn) =>
      call(async () => {
        const { family, access, refresh } = newFamily()
        const uk = userKey(user.id)
        const args = [JSON.stringify(user), uk, tokenHash(access), tokenHash(refresh), String(life.ttlMs), String(life.refreshMs)]
        const until = String(await run.CREATE(familyKey(family), ...args))
        // Indexed after it exists: of logins racing for one user, the last indexed survives.
        const older = (await run.INDEX(indexKey(uk), family, until, singleSignOn ? '1' : '0')) as string[]
        if (older.length > 0) {
          await Promise.all(older.map((f) => client.del(familyKey(f))))
          await client.zrem(indexKey(uk), ...older)
        }
        return { accessToken: access, refreshToken: refresh, user }
      }),

    check(accessToken) {
      const ref = tokenRef(accessToken)
      if (ref === null) return null
      return call(async () => {
        const reply = (await run.CHECK(familyKey(ref.family), ref.hash)) as [string, number] | null
        const user = reply && userOf(reply[0])
        return user ? { user, expiresInMs: Number(reply![1]) } : null
      })
    },

    refresh(refreshToken, life) {
      const ref = tokenRef(refreshToken)
      if (ref === null) return Promise.resolve('unknown')
      const key = familyKey(ref.family)
      return call(async () => {
        const uk = await client.hget(key, 'uk')
        if (uk === null) return 'unknown'
        await run.TOUCH(indexKey(uk), ref.family, String(Math.max(life.ttlMs, life.refreshMs)))
        const access = sibling(refreshToken)
        const refresh = sibling(refreshToken)
        const args = [ref.hash, tokenHash(access), tokenHash(refresh), String(life.ttlMs), String(life.refreshMs), String(MAX_USED)]
        const reply = (await run.ROTATE(key, ...args)) as [number, string?]
        if (reply[0] === 2) return 'reused'
        const user = reply[0] === 1 ? userOf(reply[1]) : null
        return user ? { accessToken: access, refreshToken: refresh, user } : 'unknown'
      })
    },

    logout(accessToken) {
      const ref = tokenRef(accessToken)
      if (ref === null) return Promise.resolve(false)
      return call(async () => (await run.LOGOUT(familyKey(ref.family), ref.hash)) === 1)
    },
  }
}
