// A remote JWK set (`jwks URL`) on top of jose's createRemoteJWKSet, which fetches it, keeps it,
// and refetches on an unknown `kid` at most once per cooldown. What this adds:
// - one set per URL, shared by every route and kept across reloads while a program uses it;
// - a prefetch when a program is built, so the first request does not wait;
// - stale-while-revalidate: an old set keeps verifying while a fresh one is fetched in the
//   background (jose would make the request wait for it, and fail it if the fetch fails);
// - while the set cannot be fetched and nothing is cached, requests are refused at once
//   (KeySetUnavailable) instead of each waiting for another fetch to time out.
import { createRemoteJWKSet, errors, type JWTVerifyGetKey } from 'jose'
import { event, failure } from '../../log/events.ts'

// How long one fetch may take; a request waits at most this long for a key set.
export const FETCH_TIMEOUT_MS = 1_000
// A set older than this is refetched in the background.
export const REFRESH_MS = 10 * 60_000
// After a failed fetch, requests that need a fetch are refused for this long without one.
export const RETRY_MS = 1_000

// The key set could not be fetched and no usable copy is cached: the token cannot be checked.
export class KeySetUnavailable extends Error {}

export interface KeySet {
  readonly getKey: JWTVerifyGetKey
  prefetch(): void
}

interface Shared {
  set: KeySet
  users: number
}

const shared = new Map<string, Shared>()

// The set for `url`, and the function that releases it (call it when the program is disposed).
export function acquireKeySet(url: URL, cooldownMs: number): { set: KeySet; release: () => void } {
  const id = `${url.href} ${cooldownMs}`
  let s = shared.get(id)
  if (!s) shared.set(id, (s = { set: remoteKeySet(url, cooldownMs), users: 0 }))
  s.users++
  const entry = s
  let released = false
  return {
    set: s.set,
    release() {
      if (released) return
      released = true
      if (--entry.users === 0 && shared.get(id) === entry) shared.delete(id)
    },
  }
}

// Errors of the key lookup that say something about the token, not about the fetch.
const tokenFaults: readonly string[] = [errors.JWKSNoMatchingKey.code, errors.JWKSMultipleMatchingKeys.code, errors.JOSENotSupported.code]

function remoteKeySet(url: URL, cooldownMs: number): KeySet {
  // cacheMaxAge Infinity: jose never makes a request wait because the set is old; the
  // background refresh below replaces it instead.
  const remote = createRemoteJWKSet(url, { timeoutDuration: FETCH_TIMEOUT_MS, cooldownDuration: cooldownMs, cacheMaxAge: Infinity })
  let fetchedAt = -Infinity // Date.now() of the last fetch that succeeded (ours)
  let failedAt = -Infinity // … and of the last one that failed
  let failing = false

  const succeeded = () => {
    fetchedAt = Date.now()
    failedAt = -Infinity
    if (failing) event('jwks', `the JWK set at ${url.href} can be fetched again`, { url: url.href })
    failing = false
  }
  const failed = (err: unknown) => {
    failedAt = Date.now()
    if (!failing) failure('jwks', `cannot fetch or read the JWK set at ${url.href}: ${(err as Error).message}`, { url: url.href })
    failing = true
  }
  const refresh = () => {
    if (remote.reloading || Date.now() - failedAt < RETRY_MS) return
    remote.reload().then(succeeded, failed)
  }

  return {
    prefetch: refresh,
    async getKey(header, token) {
      if (remote.jwks() === undefined) {
        if (Date.now() - failedAt < RETRY_MS) throw new KeySetUnavailable('the last fetch failed moments ago')
        try {
          await remote.reload() // joins the prefetch when it is still on its way
          succeeded()
        } catch (err) {
          failed(err)
          throw new KeySetUnavailable((err as Error).message)
        }
      } else if (Date.now() - fetchedAt > REFRESH_MS) refresh()
      try {
        return await remote(header, token)
      } catch (err) {
        if (err instanceof errors.JOSEError && tokenFaults.includes(err.code)) throw err
        failed(err)
        throw new KeySetUnavailable((err as Error).message)
      }
    },
  }
}
