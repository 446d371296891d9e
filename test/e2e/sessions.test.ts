// Login sessions through the real gateway, with a real verify upstream on 127.0.0.1: `login`
// (accepted, refused, broken, slow and unreachable verifiers), `refresh token` (rotation,
// reuse revoking the login), `logout`, `token alive`, `require session` with `forward user`,
// single-sign-on, expiry, the checks, and no token or password in any log line.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import {
  closedPort,
  policyDir,
  removeDir,
  runCli,
  startGateway,
  startRecordingUpstream,
  startUpstream,
  type RunningGateway,
  type Upstream,
} from '../helpers/gateway.ts'
import { expectProblem, type Echo } from '../helpers/http.ts'
import { until } from '../helpers/poll.ts'
import { SignJWT } from 'jose'

setDefaultTimeout(15_000)

const KEY = 'session-test-api-key-0123456789'
const JWT_SECRET = 'session-test-jwt-secret-0123456789abcdef'
const TOKEN = /^[A-Za-z0-9_-]{64}$/

interface Tokens {
  access_token: string
  refresh_token: string
  token_type: string
  expires_in: number
  refresh_expires_in: number
  user_info: Record<string, unknown>
}

// What the verifier received, per login.
const verified: { contentType: string | null; body: string; headers: Record<string, string> }[] = []
const hits: Echo[] = []
const passwords = new Set<string>()
const issued = new Set<string>()
let verifier: Upstream
let upstream: Upstream
let gw: RunningGateway // ttl 1h, single-sign-on
let short: RunningGateway // ttl 1s, refresh 3s
let dead: RunningGateway // the verifier does not listen
const dirs: string[] = []

// Accepts `NAME` with password `pw-NAME`. A few names make it misbehave.
async function verify(req: Request): Promise<Response> {
  const body = await req.text()
  const contentType = req.headers.get('content-type')
  verified.push({ contentType, body, headers: Object.fromEntries(req.headers) })
  const form = contentType?.startsWith('application/x-www-form-urlencoded') ? Object.fromEntries(new URLSearchParams(body)) : null
  const creds = (form ?? JSON.parse(body || '{}')) as { username?: string; password?: string }
  const name = creds.username ?? ''
  if (name === 'slow') await Bun.sleep(3_000)
  if (name === 'crash') return new Response('boom', { status: 500 })
  if (creds.password !== `pw-${name}`) return Response.json({ error: 'bad credentials' }, { status: 401 })
  if (name === 'text') return new Response('welcome', { headers: { 'content-type': 'text/plain' } })
  if (name === 'array') return Response.json([name])
  if (name === 'anonymous') return Response.json({ name: 'No Id' })
  if (name.startsWith('sub-')) return Response.json({ sub: name, scope: 'read' })
  return Response.json({ id: name, name: `User ${name}`, greeting: 'Grüße ✓ 日本', roles: ['reader'] })
}

const policy = (verifyUrl: string, session: string) => `
upstream verifier {
  target ${verifyUrl}
  timeout 500ms
}
upstream app { target ${upstream.url} }
app keyed { api-key env SESSION_KEY }

session {
  verify via verifier /internal/verify-login
  ${session}
}

match POST /auth/login { login }
match POST /auth/refresh { refresh token }
match POST /auth/logout { logout }
match GET,POST /auth/alive { token alive }

match GET /me {
  require session
  forward user as X-User-Json
  set header X-User-Id = user.id
  proxy app
}
match GET /either {
  require key or session
  forward user as X-User-Json
  proxy app
}
match GET /jwt {
  require jwt key env JWT_SECRET algorithms HS256
  forward user as X-User-Json
  proxy app
}
match GET /session-or-jwt {
  require session or jwt key env JWT_SECRET algorithms HS256
  forward user as X-User-Json
  proxy app
}
`

async function gateway(verifyUrl: string, session: string): Promise<RunningGateway> {
  const dir = policyDir({ 'sessions.policy': policy(verifyUrl, session) })
  dirs.push(dir)
  return startGateway(dir, ['--no-watch'], { SESSION_KEY: KEY, JWT_SECRET })
}

beforeAll(async () => {
  verifier = startUpstream(verify)
  upstream = startRecordingUpstream(hits)
  ;[gw, short, dead] = await Promise.all([
    gateway(verifier.url, 'ttl 1h\n  refresh 14d\n  single-sign-on'),
    gateway(verifier.url, 'ttl 1s\n  refresh 3s'),
    gateway(`http://127.0.0.1:${closedPort()}`, ''),
  ])
})

afterAll(async () => {
  await Promise.all([gw, short, dead].map((g) => g?.stop()))
  verifier?.stop()
  upstream?.stop()
  for (const d of dirs) removeDir(d)
})

function post(g: RunningGateway, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  const text = typeof body === 'string' ? body : JSON.stringify(body)
  return g.fetch(path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: text })
}

async function login(name: string, g = gw): Promise<Tokens> {
  passwords.add(`pw-${name}`)
  const res = await post(g, '/auth/login', { username: name, password: `pw-${name}` })
  expect(res.status).toBe(200)
  const t = (await res.json()) as Tokens
  issued.add(t.access_token).add(t.refresh_token)
  return t
}

async function refresh(refreshToken: string, g = gw): Promise<Response> {
  const res = await post(g, '/auth/refresh', { refresh_token: refreshToken })
  if (res.status === 200) {
    const t = (await res.clone().json()) as Tokens
    issued.add(t.access_token).add(t.refresh_token)
  }
  return res
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const aliveStatus = async (token: string, g = gw) => (await g.fetch('/auth/alive', { headers: bearer(token) })).status
const meStatus = async (token: string) => {
  const res = await gw.fetch('/me', { headers: bearer(token) })
  await res.arrayBuffer()
  return res.status
}
const decodeUser = (header: string) => JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as Record<string, unknown>

describe('login', () => {
  test('a JSON login: the verifier gets the body as it came; the client gets the tokens, not to be cached', async () => {
    const body = `{ "username": "ada",\n  "password": "pw-ada", "extra": [1, 2] }`
    passwords.add('pw-ada')
    const before = verified.length
    const res = await post(gw, '/auth/login', body, { cookie: 'sid=1', 'x-api-key': KEY })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('application/json')
    expect(res.headers.get('cache-control')).toBe('no-store')
    expect(res.headers.get('pragma')).toBe('no-cache')
    const t = (await res.json()) as Tokens
    issued.add(t.access_token).add(t.refresh_token)
    expect(Object.keys(t).sort()).toEqual(['access_token', 'expires_in', 'refresh_expires_in', 'refresh_token', 'token_type', 'user_info'])
    expect(t.access_token).toMatch(TOKEN)
    expect(t.refresh_token).toMatch(TOKEN)
    expect(t.access_token).not.toBe(t.refresh_token)
    expect(t.token_type).toBe('Bearer')
    expect(t.expires_in).toBe(3600)
    expect(t.refresh_expires_in).toBe(14 * 86400)
    expect(t.user_info).toEqual({ id: 'ada', name: 'User ada', greeting: 'Grüße ✓ 日本', roles: ['reader'] })
    expect(verified.length).toBe(before + 1)
    const got = verified.at(-1)!
    expect(got.body).toBe(body)
    expect(got.contentType).toBe('application/json')
    // Only what the verifier needs: no cookie or credential of the client's.
    expect(got.headers.cookie).toBeUndefined()
    expect(got.headers['x-api-key']).toBeUndefined()
    expect(got.headers['x-request-id']).toBe(res.headers.get('x-request-id')!)
    expect(got.headers['x-forwarded-for']).toBe('127.0.0.1')
  })

  test('a form login is passed on as a form', async () => {
    passwords.add('pw-grace')
    const res = await gw.fetch('/auth/login', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'username=grace&password=pw-grace',
    })
    expect(res.status).toBe(200)
    expect(((await res.json()) as Tokens).user_info.id).toBe('grace')
    expect(verified.at(-1)).toMatchObject({ contentType: 'application/x-www-form-urlencoded', body: 'username=grace&password=pw-grace' })
  })

  test('refused credentials and any other non-2xx answer of the verifier are 401', async () => {
    passwords.add('wrong-password')
    const refused = await post(gw, '/auth/login', { username: 'ada', password: 'wrong-password' })
    const p = await expectProblem(refused, 401, 'unauthenticated')
    expect(p.detail).not.toContain('bad credentials')
    passwords.add('pw-crash')
    await expectProblem(await post(gw, '/auth/login', { username: 'crash', password: 'pw-crash' }), 401, 'unauthenticated')
  })

  test('a verifier that accepts with something else than a JSON object naming the user is 502', async () => {
    for (const name of ['text', 'array', 'anonymous']) {
      passwords.add(`pw-${name}`)
      const res = await post(gw, '/auth/login', { username: name, password: `pw-${name}` })
      await expectProblem(res, 502, 'bad_gateway')
    }
  })

  test('a user info without id uses sub (then username) as the user id', async () => {
    const t = await login('sub-7')
    expect(t.user_info).toEqual({ sub: 'sub-7', scope: 'read' })
    const res = await gw.fetch('/me', { headers: bearer(t.access_token) })
    expect(res.status).toBe(200)
    expect(hits.at(-1)!.headers['x-user-id']).toBe('sub-7')
  })

  test('a body over 64 KiB is 413 and never reaches the verifier', async () => {
    const before = verified.length
    const res = await post(gw, '/auth/login', { username: 'ada', password: 'pw-ada', pad: 'x'.repeat(70_000) })
    await expectProblem(res, 413, 'payload_too_large')
    expect(verified.length).toBe(before)
  })

  test('a verifier slower than its upstream timeout is 504, within the timeout', async () => {
    passwords.add('pw-slow')
    const t0 = performance.now()
    const res = await post(gw, '/auth/login', { username: 'slow', password: 'pw-slow' })
    await expectProblem(res, 504, 'upstream_timeout')
    expect(performance.now() - t0).toBeLessThan(2_000)
  })

  test('a verifier that cannot be reached is 502, at once', async () => {
    const t0 = performance.now()
    const res = await post(dead, '/auth/login', { username: 'ada', password: 'pw-ada' })
    await expectProblem(res, 502, 'bad_gateway')
    expect(performance.now() - t0).toBeLessThan(2_000)
  })
})

describe('token alive', () => {
  test('a live access token: 200 active with its seconds left; anything else 401 with a Bearer challenge', async () => {
    const t = await login('alan')
    const res = await gw.fetch('/auth/alive', { headers: bearer(t.access_token) })
    expect(res.status).toBe(200)
    expect(res.headers.get('cache-control')).toBe('no-store')
    const body = (await res.json()) as { active: boolean; expires_in: number }
    expect(body.active).toBe(true)
    expect(body.expires_in).toBeGreaterThan(3590)
    expect(body.expires_in).toBeLessThanOrEqual(3600)
    const missing = await gw.fetch('/auth/alive')
    expect(missing.headers.get('www-authenticate')).toBe('Bearer')
    await expectProblem(missing, 401, 'unauthenticated')
    for (const wrong of [t.refresh_token, 'nonsense', t.access_token.slice(0, 63) + (t.access_token.endsWith('A') ? 'B' : 'A')]) {
      const res2 = await gw.fetch('/auth/alive', { method: 'POST', headers: bearer(wrong) })
      expect(res2.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"')
      await expectProblem(res2, 401, 'unauthenticated')
    }
  })
})

describe('require session and forward user', () => {
  test('the upstream gets the user as base64 JSON, never a client-sent X-User-Json, never the token in the query', async () => {
    const t = await login('linus')
    const forged = Buffer.from(JSON.stringify({ id: 'root' })).toString('base64')
    const before = hits.length
    const res = await gw.fetch(`/me?a=1&access_token=${t.access_token}&b=2`, {
      headers: { 'x-user-json': forged, x_user_json: forged, 'X.User.Json': forged },
    })
    expect(res.status).toBe(200)
    expect(hits.length).toBe(before + 1)
    const seen = hits.at(-1)!
    expect(seen.query).toBe('a=1&b=2')
    expect(seen.raw).not.toContain(t.access_token)
    expect(seen.headers['x-user-json']).toBe(Buffer.from(JSON.stringify(t.user_info), 'utf8').toString('base64'))
    expect(decodeUser(seen.headers['x-user-json']!)).toEqual(t.user_info)
    expect(Object.keys(seen.headers).filter((h) => h.replace(/[_.]/g, '-') === 'x-user-json')).toEqual(['x-user-json'])
    expect(seen.headers['x-user-id']).toBe('linus')
    const line = await gw.waitFor('stdout', new RegExp(`"request_id":"${res.headers.get('x-request-id')}"`))
    const entry = JSON.parse(line) as Record<string, unknown>
    expect(entry.user).toBe('linus')
    expect(entry.query).toBe('a=1&access_token=[redacted]&b=2')
  })

  test('the bearer header works the same; no token is 401 with a Bearer challenge, a bad one invalid_token; the upstream is not reached', async () => {
    const t = await login('ken')
    const res = await gw.fetch('/me', { headers: bearer(t.access_token) })
    expect(res.status).toBe(200)
    expect(decodeUser(hits.at(-1)!.headers['x-user-json']!)).toEqual(t.user_info)
    const before = hits.length
    const none = await gw.fetch('/me', { headers: { 'x-user-json': 'e30=' } })
    expect(none.headers.get('www-authenticate')).toBe('Bearer')
    await expectProblem(none, 401, 'unauthenticated')
    const bad = await gw.fetch('/me?access_token=nonsense')
    expect(bad.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"')
    await expectProblem(bad, 401, 'unauthenticated')
    await expectProblem(await gw.fetch('/me', { headers: bearer(t.refresh_token) }), 401, 'unauthenticated')
    expect(hits.length).toBe(before)
  })

  test('require key or session: a key binds no user, so no X-User-Json; a session token does', async () => {
    const res = await gw.fetch('/either', { headers: { 'x-api-key': KEY, 'x-user-json': 'e30=' } })
    expect(res.status).toBe(200)
    expect(hits.at(-1)!.headers['x-user-json']).toBeUndefined()
    expect(hits.at(-1)!.headers['x-consumer']).toBe('keyed')
    const t = await login('dennis')
    expect((await gw.fetch('/either', { headers: bearer(t.access_token) })).status).toBe(200)
    expect(decodeUser(hits.at(-1)!.headers['x-user-json']!).id).toBe('dennis')
  })
})

describe('forward user with a JWT', () => {
  const jwt = (claims: Record<string, unknown>) =>
    new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(JWT_SECRET))

  test('require jwt: the upstream gets the verified claims as base64 JSON', async () => {
    const token = await jwt({ sub: 'user-9', name: 'Zoë', scope: 'read write' })
    const res = await gw.fetch('/jwt', { headers: { ...bearer(token), 'x-user-json': 'e30=' } })
    expect(res.status).toBe(200)
    const claims = decodeUser(hits.at(-1)!.headers['x-user-json']!)
    expect(claims).toMatchObject({ sub: 'user-9', name: 'Zoë', scope: 'read write' })
    expect(typeof claims.exp).toBe('number')
    // Claims without `sub` bind no user, but they are still the claims forwarded.
    expect((await gw.fetch('/jwt', { headers: bearer(await jwt({ client: 'batch' })) })).status).toBe(200)
    expect(decodeUser(hits.at(-1)!.headers['x-user-json']!)).toMatchObject({ client: 'batch' })
  })

  test('require session or jwt: a session token and a JWT both get through, each forwarding its own user', async () => {
    const t = await login('barbara-or')
    expect((await gw.fetch('/session-or-jwt', { headers: bearer(t.access_token) })).status).toBe(200)
    expect(decodeUser(hits.at(-1)!.headers['x-user-json']!)).toEqual(t.user_info)
    expect((await gw.fetch('/session-or-jwt', { headers: bearer(await jwt({ sub: 'jwt-user' })) })).status).toBe(200)
    expect(decodeUser(hits.at(-1)!.headers['x-user-json']!).sub).toBe('jwt-user')
    const bad = await gw.fetch('/session-or-jwt', { headers: bearer('A'.repeat(64)) })
    await expectProblem(bad, 401, 'unauthenticated')
  })
})

describe('refresh token', () => {
  test('rotation: a new pair; the old refresh token used once; earlier access tokens keep working', async () => {
    const t = await login('barbara')
    const res = await refresh(t.refresh_token)
    expect(res.status).toBe(200)
    expect(res.headers.get('cache-control')).toBe('no-store')
    const n = (await res.json()) as Tokens
    expect(n.access_token).toMatch(TOKEN)
    expect(n.refresh_token).not.toBe(t.refresh_token)
    expect(n.user_info).toEqual(t.user_info)
    expect(n.expires_in).toBe(3600)
    expect(await meStatus(n.access_token)).toBe(200)
    expect(await meStatus(t.access_token)).toBe(200)
    const n2 = (await (await refresh(n.refresh_token)).json()) as Tokens
    expect(await aliveStatus(n2.access_token)).toBe(200)
  })

  test('a used refresh token presented again is 401 and revokes every token of that login, not others', async () => {
    const t = await login('edsger')
    const other = await login('tony')
    const n = (await (await refresh(t.refresh_token)).json()) as Tokens
    const again = await refresh(t.refresh_token)
    const p = await expectProblem(again, 401, 'unauthenticated')
    expect(p.detail).toContain('used before')
    for (const tok of [t.access_token, n.access_token]) expect(await meStatus(tok)).toBe(401)
    await expectProblem(await refresh(n.refresh_token), 401, 'unauthenticated')
    expect(await meStatus(other.access_token)).toBe(200)
  })

  test('a body without a refresh token is 400; an unknown token 401', async () => {
    await expectProblem(await post(gw, '/auth/refresh', '{not json'), 400, 'bad_request')
    await expectProblem(await post(gw, '/auth/refresh', { token: 'x' }), 400, 'bad_request')
    await expectProblem(await post(gw, '/auth/refresh', { refresh_token: 7 }), 400, 'bad_request')
    await expectProblem(await post(gw, '/auth/refresh', '[]'), 400, 'bad_request')
    await expectProblem(await post(gw, '/auth/refresh', { refresh_token: 'A'.repeat(64) }), 401, 'unauthenticated')
    const t = await login('niklaus')
    await expectProblem(await post(gw, '/auth/refresh', { refresh_token: t.access_token }), 401, 'unauthenticated')
    expect(await meStatus(t.access_token)).toBe(200)
  })

  test('the form `refresh_token=…` works too', async () => {
    const t = await login('john')
    const res = await gw.fetch('/auth/refresh', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `grant_type=refresh_token&refresh_token=${t.refresh_token}`,
    })
    expect(res.status).toBe(200)
    issued.add(((await res.json()) as Tokens).access_token)
  })
})

describe('logout', () => {
  test('204; then the access and refresh tokens are dead, and a second logout is 401', async () => {
    const t = await login('margaret')
    const n = (await (await refresh(t.refresh_token)).json()) as Tokens
    const res = await gw.fetch('/auth/logout', { method: 'POST', headers: bearer(t.access_token) })
    expect(res.status).toBe(204)
    expect(await res.text()).toBe('')
    expect(await meStatus(t.access_token)).toBe(401)
    expect(await meStatus(n.access_token)).toBe(401)
    expect(await aliveStatus(n.access_token)).toBe(401)
    await expectProblem(await refresh(n.refresh_token), 401, 'unauthenticated')
    await expectProblem(await gw.fetch('/auth/logout', { method: 'POST', headers: bearer(t.access_token) }), 401, 'unauthenticated')
    const none = await gw.fetch('/auth/logout', { method: 'POST' })
    expect(none.headers.get('www-authenticate')).toBe('Bearer')
    await expectProblem(none, 401, 'unauthenticated')
  })
})

describe('single-sign-on', () => {
  test("a new login revokes the user's older logins (refreshed ones too), not other users'", async () => {
    const first = await login('barbara-sso')
    const rotated = (await (await refresh(first.refresh_token)).json()) as Tokens
    const other = await login('frances')
    const second = await login('barbara-sso')
    expect(await meStatus(first.access_token)).toBe(401)
    expect(await meStatus(rotated.access_token)).toBe(401)
    await expectProblem(await refresh(rotated.refresh_token), 401, 'unauthenticated')
    expect(await meStatus(second.access_token)).toBe(200)
    expect(await meStatus(other.access_token)).toBe(200)
  })

  test('without single-sign-on both logins stay', async () => {
    const a = await login('hedy', short)
    const b = await login('hedy', short)
    expect(await aliveStatus(a.access_token, short)).toBe(200)
    expect(await aliveStatus(b.access_token, short)).toBe(200)
  })
})

describe('expiry', () => {
  test('ttl 1s: the access token dies after a second; the refresh token then gets a new one; it dies after 3s', async () => {
    const t = await login('ada-short', short)
    expect(t.expires_in).toBe(1)
    expect(t.refresh_expires_in).toBe(3)
    expect(await aliveStatus(t.access_token, short)).toBe(200)
    const t0 = performance.now()
    await until(
      () => aliveStatus(t.access_token, short),
      (s) => s === 401,
      4_000,
      'the access token expires',
    )
    expect(performance.now() - t0).toBeGreaterThan(500)
    const res = await refresh(t.refresh_token, short)
    expect(res.status).toBe(200)
    const n = (await res.json()) as Tokens
    expect(await aliveStatus(n.access_token, short)).toBe(200)
    // Logging in again, then waiting the refresh lifetime out without using it.
    const u = await login('ada-short-2', short)
    await until(
      () => refresh(u.refresh_token, short).then((r) => r.status),
      (s) => s === 401,
      6_000,
      'the refresh token expires',
    )
  })
})

describe('checks', () => {
  test('--workers without --redis refuses every session directive (needs-redis); forward user needs a bound user', async () => {
    const d = policyDir({ 'p.policy': policy(verifier.url, '') })
    dirs.push(d)
    const { code, stderr } = await runCli(['--policies', d, '--workers', '2', '--port', '1', '--admin-port', '0', '--no-watch'], {
      SESSION_KEY: KEY,
      JWT_SECRET,
    })
    expect(code).toBe(1)
    for (const name of ['login', 'refresh token', 'logout', 'token alive', 'require session'])
      expect(stderr).toContain(`'${name}' needs --redis when the gateway runs --workers`)
    const e = policyDir({ 'p.policy': 'match GET /x {\n  forward user as X-User\n  respond 200\n}\nmatch POST /login { login }\n' })
    dirs.push(e)
    const checked = await runCli(['check', e])
    expect(checked.code).toBe(1)
    expect(checked.stdout + checked.stderr).toContain("p.policy:2:3: error: 'forward user' needs a route that identifies the user")
    expect(checked.stdout + checked.stderr).toContain("p.policy:5:21: error: 'login' needs a session block")
  })
})

describe('logs', () => {
  test('no token and no password appears in any log line of the gateways', async () => {
    expect(issued.size).toBeGreaterThan(20)
    const lines = [gw, short, dead].flatMap((g) => [...g.stdout, ...g.stderr]).join('\n')
    for (const secret of [...issued, ...passwords]) expect(lines).not.toContain(secret)
  })
})
