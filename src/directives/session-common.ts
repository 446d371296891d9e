// What the session directives share (`login`, `refresh token`, `logout`, `token alive`,
// `require session`): their checks, the bearer token of a request, the token answer.
import type { Span } from '../policy/source.ts'
import { storeDown, unauthenticated } from '../runtime/auth.ts'
import type { RequestContext } from '../runtime/context.ts'
import { GatewayError } from '../runtime/gateway-error.ts'
import type { SessionLifetimes, TokenPair } from '../store/sessions.ts'
import { StoreUnavailable } from '../store/store.ts'
import type { CheckContext, SessionSettings } from './define.ts'

// RFC 6750 §3: a request without a token gets the bare challenge; a bad token this one.
export const CHALLENGE = 'Bearer'
export const CHALLENGE_INVALID = 'Bearer error="invalid_token"'

export const invalidToken = () => unauthenticated('the access token is not valid (unknown, expired or revoked)', CHALLENGE_INVALID)

// Every session directive needs the session block, and a store the gateway's processes share.
export function checkSession(name: string, ctx: CheckContext, at: Span): void {
  if (ctx.session === null)
    ctx.bag.error('no-session', `'${name}' needs a session block: session { verify via UPSTREAM /path }`, at, {
      message: 'declare it once, at the top level of any policy file (see docs/sessions.md)',
    })
  if (ctx.perWorkerStore)
    ctx.bag.error('needs-redis', `'${name}' needs --redis when the gateway runs --workers`, at, {
      message: 'each worker would keep its own tokens: a token issued by one worker would be unknown to the others',
    })
}

export const lifetimesOf = (s: SessionSettings): SessionLifetimes => ({ ttlMs: s.ttlMs, refreshMs: s.refreshMs })

// The token of `Authorization: Bearer …` (the scheme is case-insensitive, RFC 9110 §11.1):
// null when the request has none, '' when it is empty.
export function bearerToken(ctx: RequestContext): string | null {
  const auth = ctx.req.headers.get('authorization')
  if (auth === null || auth.length < 6 || auth.slice(0, 6).toLowerCase() !== 'bearer') return null
  if (auth.length > 6 && auth.charCodeAt(6) !== 32) return null
  return auth.slice(7).trim()
}

// A failed store call → 503 store_unavailable (a session is never assumed valid); anything
// else is a fault of the gateway, left to the handler.
export function storeFailure(err: unknown): GatewayError {
  if (err instanceof StoreUnavailable) return storeDown()
  throw err
}

const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' }

// A JSON answer that no cache keeps (RFC 6749 §5.1).
export function privateJson(status: number, value: unknown): Response {
  const text = JSON.stringify(value)
  return new Response(text, {
    status,
    headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...NO_STORE },
  })
}

// What `login` and `refresh token` answer.
export function tokenAnswer(t: TokenPair, life: SessionLifetimes): Response {
  return privateJson(200, {
    access_token: t.accessToken,
    refresh_token: t.refreshToken,
    token_type: 'Bearer',
    expires_in: Math.ceil(life.ttlMs / 1000),
    refresh_expires_in: Math.ceil(life.refreshMs / 1000),
    user_info: t.user.info,
  })
}
