// `refresh token`: a body `{"refresh_token": "…"}` (or the form `refresh_token=…`) → 200 with a
// new pair, as `login` answers. The refresh token presented is used up (rotation); presenting
// it again revokes every token of its login (sessions.ts).
import { GatewayError } from '../runtime/gateway-error.ts'
import type { RequestContext } from '../runtime/context.ts'
import { defineDirective } from './define.ts'
import { checkSession, lifetimesOf, storeFailure, tokenAnswer } from './session-common.ts'

const BODY_CAP = 16 * 1024

async function presented(ctx: RequestContext): Promise<string> {
  const text = new TextDecoder().decode(await ctx.readBody(BODY_CAP))
  const type = ctx.req.headers.get('content-type')?.toLowerCase() ?? ''
  let token: unknown
  if (type.startsWith('application/x-www-form-urlencoded')) token = new URLSearchParams(text).get('refresh_token')
  else {
    try {
      const body: unknown = JSON.parse(text)
      token = typeof body === 'object' && body !== null ? (body as Record<string, unknown>).refresh_token : undefined
    } catch {
      throw new GatewayError('bad_request', 'the body is not JSON: send {"refresh_token": "…"}')
    }
  }
  if (typeof token !== 'string' || token === '') throw new GatewayError('bad_request', 'the body has no refresh_token: send {"refresh_token": "…"}')
  return token
}

export default defineDirective({
  name: 'refresh token',
  stage: 'proxy',
  terminal: true,
  places: ['route'],
  usage: 'refresh token',
  summary:
    'Session refresh: a body {"refresh_token": "…"} gets a new token pair (200, as login answers); the old refresh token is used up, and presenting it again revokes every token of its login.',
  read(a) {
    a.end()
    return {}
  },
  check(_cfg, ctx, at) {
    checkSession('refresh token', ctx, at)
  },
  compile(_cfg, c) {
    const life = lifetimesOf(c.session!)
    const store = c.store.sessions
    return async function refreshToken(ctx) {
      const token = await presented(ctx)
      let outcome
      try {
        outcome = await store.refresh(token, life)
      } catch (err) {
        throw storeFailure(err)
      }
      if (outcome === 'unknown') throw new GatewayError('unauthenticated', 'the refresh token is not valid (unknown, expired or revoked)')
      if (outcome === 'reused')
        throw new GatewayError('unauthenticated', 'the refresh token was used before: every token of its login is now revoked')
      ctx.identity = { app: null, user: outcome.user, jwt: null, via: 'session' }
      return tokenAnswer(outcome, life)
    }
  },
})
