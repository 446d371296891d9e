// `token alive`: `Authorization: Bearer <access token>` → 200 {"active": true, "expires_in": N}
// (whole seconds left, rounded up) while the token is live; 401 otherwise.
import { unauthenticated } from '../runtime/auth.ts'
import type { ActiveSession } from '../store/sessions.ts'
import { defineDirective } from './define.ts'
import { bearerToken, CHALLENGE, checkSession, invalidToken, privateJson, storeFailure } from './session-common.ts'

function answer(active: ActiveSession | null): Response {
  if (active === null) throw invalidToken()
  return privateJson(200, { active: true, expires_in: Math.ceil(active.expiresInMs / 1000) })
}

export default defineDirective({
  name: 'token alive',
  stage: 'proxy',
  terminal: true,
  places: ['route'],
  usage: 'token alive',
  summary: 'Session check: `Authorization: Bearer <access token>` gets 200 {"active": true, "expires_in": N} while the token is live, else 401.',
  read(a) {
    a.end()
    return {}
  },
  check(_cfg, ctx, at) {
    checkSession('token alive', ctx, at)
  },
  compile(_cfg, c) {
    const store = c.store.sessions
    return function tokenAlive(ctx) {
      const token = bearerToken(ctx)
      if (token === null) throw unauthenticated('this needs the access token: Authorization: Bearer <access token>', CHALLENGE)
      let active
      try {
        active = store.check(token)
      } catch (err) {
        throw storeFailure(err)
      }
      return active instanceof Promise ? active.then(answer, (err) => Promise.reject(storeFailure(err))) : answer(active)
    }
  },
})
