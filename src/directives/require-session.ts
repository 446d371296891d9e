// `require session`: an access token issued by `login` (sessions.ts), from `Authorization:
// Bearer` or the query parameter `access_token` (removed before proxying, so the upstream and
// its logs never see it). Binds the user (`user.id`, `user.FIELD`, `forward user`); no app.
// A bearer token shaped like a JWT (it has dots; session tokens have none) is not a session
// credential: `require session or jwt` hands it to `require jwt`.
import { unauthenticated, type AuthOutcome } from '../runtime/auth.ts'
import type { GatewayError } from '../runtime/gateway-error.ts'
import type { Identity } from '../runtime/identity.ts'
import { removeParam } from '../runtime/query.ts'
import type { ActiveSession } from '../store/sessions.ts'
import { defineRequire } from './require-common.ts'
import { bearerToken, CHALLENGE, CHALLENGE_INVALID, checkSession, invalidToken, storeFailure } from './session-common.ts'

const QUERY = 'access_token'

function identityOf(active: ActiveSession | null): Identity | GatewayError {
  return active === null ? invalidToken() : { app: null, user: active.user, jwt: null, via: 'session' }
}

export default defineRequire<Record<string, never>>({
  name: 'session',
  options: '',
  summary: 'Identifies the user by a session access token (`login`), from `Authorization: Bearer` or `?access_token=` (removed before proxying).',
  binds: ['user'],
  challenge: CHALLENGE,
  read: () => ({}),
  check(_cfg, ctx, at) {
    checkSession('require session', ctx, at)
  },
  compile(_cfg, c) {
    const store = c.store.sessions
    return function session(ctx): AuthOutcome | Promise<AuthOutcome> {
      let token = bearerToken(ctx)
      if (token !== null && token.includes('.')) token = null
      if (ctx.rawQuery !== '' && ctx.rawQuery.includes('=')) {
        const q = new URLSearchParams(ctx.rawQuery).get(QUERY)
        if (q !== null) {
          ctx.upstreamQuery = removeParam(ctx.upstreamQuery ?? ctx.rawQuery, QUERY)
          token ??= q
        }
      }
      if (token === null) return null
      if (token === '') return unauthenticated('the access token is empty', CHALLENGE_INVALID)
      let active
      try {
        active = store.check(token)
      } catch (err) {
        return storeFailure(err)
      }
      return active instanceof Promise ? active.then(identityOf, storeFailure) : identityOf(active)
    }
  },
})
