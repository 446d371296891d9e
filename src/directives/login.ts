// `login`: the request body (JSON, a form, anything), as it came and with its content type, is
// POSTed to the session block's `verify via UPSTREAM /path`. A 2xx answer whose body is a JSON
// object is the user info: the gateway then issues a login (sessions.ts) and answers the
// tokens. Any other answer is a refused login (401). A verifier that cannot be reached is 502,
// one that does not answer within its upstream's timeout 504; a 2xx that is not a JSON object
// naming the user is 502 too: the verifier is broken, the credentials may be fine.
import { UpstreamFailure, type Timeouts } from '../runtime/client/client.ts'
import { exchange } from '../runtime/client/socket-client.ts'
import { readAnswer } from '../runtime/answer-body.ts'
import type { RequestContext } from '../runtime/context.ts'
import { GatewayError } from '../runtime/gateway-error.ts'
import type { Target, UpstreamPool } from '../runtime/upstream.ts'
import { defineDirective } from './define.ts'
import { checkSession, lifetimesOf, storeFailure, tokenAnswer } from './session-common.ts'

const BODY_CAP = 64 * 1024 // credentials are small
const INFO_CAP = 8 * 1024 // the user info is kept per login and may travel as a header
const ID_FIELDS = ['id', 'sub', 'username'] as const

// The user's identity for single-sign-on (and the access log's `user`).
function userIdOf(info: Record<string, unknown>): string | null {
  for (const f of ID_FIELDS) {
    const v = info[f]
    if (typeof v === 'string' && v !== '') return v
    if (typeof v === 'number' && Number.isFinite(v)) return String(v)
  }
  return null
}

function failureError(f: UpstreamFailure, pool: UpstreamPool, t: Timeouts): GatewayError {
  if (f.kind === 'connect_timeout')
    return new GatewayError('upstream_timeout', `the session verifier ${pool.name} did not accept a connection within ${t.connectMs} ms`)
  if (f.kind === 'timeout') return new GatewayError('upstream_timeout', `the session verifier ${pool.name} did not answer within ${t.headersMs} ms`)
  if (f.kind === 'connect') return new GatewayError('bad_gateway', `the session verifier ${pool.name} could not be reached`)
  return new GatewayError('bad_gateway', `the session verifier ${pool.name} failed: ${f.message}`)
}

// One POST to the verifier; a refused connection is tried on another target when the upstream
// retries on connect errors (the verifier never saw it). A pooled connection the verifier had
// closed is sent again: checking credentials is safe to repeat.
async function askVerifier(ctx: RequestContext, pool: UpstreamPool, path: string, body: Uint8Array): Promise<Response> {
  const type = ctx.req.headers.get('content-type')
  const headerLines =
    `accept: application/json\r\nx-request-id: ${ctx.id}\r\nx-forwarded-for: ${ctx.ip}\r\nx-real-ip: ${ctx.ip}\r\n` +
    (type === null ? '' : `content-type: ${type}\r\n`)
  const retries = pool.retry?.on.connectError ? pool.retry.count : 0
  const tried = new Set<Target>()
  const started = performance.now()
  for (let attempt = 0; ; attempt++) {
    const target = pool.next(tried)
    tried.add(target)
    ctx.upstream = target.origin
    try {
      const { response } = await exchange({
        origin: target.conn,
        method: 'POST',
        target: `${target.basePath}${path}`,
        headerLines,
        body,
        length: null, // a Uint8Array: the client writes its Content-Length
        bodyLimit: body.byteLength,
        replayable: true,
        timeouts: pool.timeouts,
      })
      ctx.upstreamMs = performance.now() - started
      ctx.upstreamStatus = response.status
      pool.report(target, response.status >= 502 && response.status <= 504)
      return response
    } catch (err) {
      if (!(err instanceof UpstreamFailure)) throw err
      ctx.upstreamMs = performance.now() - started
      pool.report(target, true)
      if (attempt < retries && (err.kind === 'connect' || err.kind === 'connect_timeout')) continue
      throw failureError(err, pool, pool.timeouts)
    }
  }
}

// The verifier's answer → the user info, null for a refused login; a GatewayError when broken.
async function userInfoOf(res: Response): Promise<Record<string, unknown> | null> {
  if (res.status < 200 || res.status > 299) {
    // Read (bounded) so the connection can carry the next login; what it says stays private.
    await readAnswer(res, INFO_CAP, 'a login').catch(() => {})
    return null
  }
  const bytes = await readAnswer(res, INFO_CAP, 'a login')
  let info: unknown
  try {
    info = JSON.parse(new TextDecoder().decode(bytes))
  } catch {
    info = undefined
  }
  if (typeof info !== 'object' || info === null || Array.isArray(info))
    throw new GatewayError('bad_gateway', 'the session verifier accepted the login but its answer is not a JSON object (the user info)')
  return info as Record<string, unknown>
}

export default defineDirective({
  name: 'login',
  stage: 'proxy',
  terminal: true,
  places: ['route'],
  usage: 'login',
  summary:
    "Session login: POSTs the request body as it came to the session block's verifier; its 2xx JSON user info gets 200 {access_token, refresh_token, token_type, expires_in, user_info}, any other answer 401.",
  read(a) {
    a.end()
    return {}
  },
  check(_cfg, ctx, at) {
    checkSession('login', ctx, at)
  },
  compile(_cfg, c) {
    const session = c.session!
    const { verify, verifyPath, singleSignOn } = session
    const life = lifetimesOf(session)
    const store = c.store.sessions
    return async function login(ctx) {
      const body = await ctx.readBody(BODY_CAP)
      const info = await userInfoOf(await askVerifier(ctx, verify, verifyPath, body))
      if (info === null) throw new GatewayError('unauthenticated', 'the login was refused: the credentials were not accepted')
      const id = userIdOf(info)
      if (id === null) throw new GatewayError('bad_gateway', 'the session verifier accepted the login but its user info has no id, sub or username')
      let tokens
      try {
        tokens = await store.login({ id, info }, life, singleSignOn)
      } catch (err) {
        throw storeFailure(err)
      }
      // The access log names who logged in.
      ctx.identity = { app: null, user: tokens.user, jwt: null, via: 'session' }
      return tokenAnswer(tokens, life)
    }
  },
})
