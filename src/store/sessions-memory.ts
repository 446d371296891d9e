// Login sessions in one process's memory (the rules are in sessions.ts). Expired logins are
// dropped when met, and all of them every SWEEP_EVERY logins.
import { MAX_USED, newFamily, sibling, tokenHash, tokenRef, userKey, type SessionStore, type SessionUser } from './sessions.ts'

const SWEEP_EVERY = 1024

interface Family {
  readonly user: SessionUser
  readonly userKey: string
  refresh: string // the current refresh token's hash
  refreshUntil: number
  used: string[] // hashes of used refresh tokens, oldest first
  readonly access: Map<string, number> // access token hash → expiry
  until: number // when the last of its tokens expires
}

export function memorySessions(now: () => number = Date.now): SessionStore {
  const families = new Map<string, Family>()
  const users = new Map<string, Map<string, number>>() // user key → family → until
  let logins = 0

  function live(family: string, t: number): Family | null {
    const f = families.get(family)
    if (f === undefined) return null
    if (f.until > t) return f
    revoke(family, f)
    return null
  }

  function revoke(family: string, f: Family): void {
    families.delete(family)
    const index = users.get(f.userKey)
    index?.delete(family)
    if (index?.size === 0) users.delete(f.userKey)
  }

  function sweep(t: number): void {
    for (const [family, f] of families) if (f.until <= t) revoke(family, f)
  }

  return {
    async login(user, life, singleSignOn) {
      const t = now()
      if (++logins % SWEEP_EVERY === 0) sweep(t)
      const { family, access, refresh } = newFamily()
      const until = t + Math.max(life.ttlMs, life.refreshMs)
      const uk = userKey(user.id)
      if (singleSignOn)
        for (const older of [...(users.get(uk)?.keys() ?? [])]) {
          const f = families.get(older)
          if (f) revoke(older, f)
        }
      let index = users.get(uk)
      if (index === undefined) users.set(uk, (index = new Map()))
      families.set(family, {
        user,
        userKey: uk,
        refresh: tokenHash(refresh),
        refreshUntil: t + life.refreshMs,
        used: [],
        access: new Map([[tokenHash(access), t + life.ttlMs]]),
        until,
      })
      index.set(family, until)
      return { accessToken: access, refreshToken: refresh, user }
    },

    check(accessToken) {
      const ref = tokenRef(accessToken)
      if (ref === null) return null
      const t = now()
      const f = live(ref.family, t)
      const exp = f?.access.get(ref.hash)
      if (exp === undefined || exp <= t) return null
      return { user: f!.user, expiresInMs: exp - t }
    },

    async refresh(refreshToken, life) {
      const ref = tokenRef(refreshToken)
      if (ref === null) return 'unknown'
      const t = now()
      const f = live(ref.family, t)
      if (f === null) return 'unknown'
      if (f.refresh !== ref.hash) {
        if (!f.used.includes(ref.hash)) return 'unknown'
        revoke(ref.family, f)
        return 'reused'
      }
      if (f.refreshUntil <= t) return 'unknown'
      const access = sibling(refreshToken)
      const refresh = sibling(refreshToken)
      f.used.push(ref.hash)
      if (f.used.length > MAX_USED) f.used.shift()
      for (const [h, exp] of f.access) if (exp <= t) f.access.delete(h)
      f.access.set(tokenHash(access), t + life.ttlMs)
      f.refresh = tokenHash(refresh)
      f.refreshUntil = t + life.refreshMs
      f.until = Math.max(f.until, t + Math.max(life.ttlMs, life.refreshMs))
      users.get(f.userKey)?.set(ref.family, f.until)
      return { accessToken: access, refreshToken: refresh, user: f.user }
    },

    async logout(accessToken) {
      const ref = tokenRef(accessToken)
      if (ref === null) return false
      const f = live(ref.family, now())
      if (f === null || !f.access.has(ref.hash)) return false
      revoke(ref.family, f)
      return true
    },
  }
}
