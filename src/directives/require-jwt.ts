// `require jwt`: a bearer token signed by the issuer's key (a JWK set fetched from `jwks URL`,
// or `key env|file` holding a PEM public key, a JWK set, or an HMAC secret). jose verifies it
// against an explicit algorithm list, never `none`, never HMAC with a public key. The verified
// claims become `jwt.*`; `sub` is the user; an app whose `jwt-subject` is the token's
// `azp`, `client_id` or `sub` (or the claim `app-claim` names) is the app.
import { unquote } from '../policy/ast.ts'
import type { ArgCursor, SecretRef } from '../policy/cursor.ts'
import { didYouMean } from '../policy/diagnostics.ts'
import type { Span } from '../policy/source.ts'
import { appIdentity, storeDown, unauthenticated } from '../runtime/auth.ts'
import type { RequestContext } from '../runtime/context.ts'
import { GatewayError } from '../runtime/gateway-error.ts'
import type { App, Identity } from '../runtime/identity.ts'
import { ALGORITHMS, algorithmsFor, readKeyMaterial, type KeyMaterial } from '../runtime/jwt/keys.ts'
import { acquireVerifier, CHALLENGE_INVALID, type Verdict, type Verifier } from '../runtime/jwt/verifier.ts'
import type { CheckContext, CompileContext } from './define.ts'
import { decodeProtectedHeader } from 'jose'
import { defineRequire } from './require-common.ts'

interface JwtConfig {
  issuer: string | null
  audience: string[] | null
  jwks: { url: URL; span: Span } | null
  key: SecretRef | null
  algorithms: { names: string[]; span: Span } | null
  leewayMs: number
  cooldownMs: number
  appClaim: string | null
}

const DEFAULT_COOLDOWN_MS = 30_000
const APP_CLAIMS = ['azp', 'client_id', 'sub']
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]'])

function text(a: ArgCursor, what: string): string | undefined {
  const arg = a.expect(['string', 'url', 'word'], what)
  if (!arg) return undefined
  return arg.kind === 'string' ? unquote(arg.text) : arg.text
}

function readAlgorithms(a: ArgCursor): { names: string[]; span: Span } | undefined {
  const first = a.peek()
  const names = a.list(() => {
    const w = a.word('an algorithm like RS256')
    if (!w) return undefined
    if (w.text === 'none') return a.fail('bad-algorithm', "'none' is never accepted: a token without a signature proves nothing", w.span)
    if (ALGORITHMS.includes(w.text)) return w.text
    const near = didYouMean(w.text, ALGORITHMS)
    return a.fail(
      'bad-algorithm',
      `unknown algorithm '${w.text}'${near ? `; did you mean '${near}'?` : ''} (known: ${ALGORITHMS.join(', ')})`,
      w.span,
    )
  })
  return names && { names: [...new Set(names)], span: first!.span }
}

// Each option reads its value into the config; false after reporting a bad one.
const OPTIONS: Record<string, (a: ArgCursor, cfg: JwtConfig) => boolean> = {
  issuer: (a, cfg) => (cfg.issuer = text(a, 'the issuer ("https://auth.example.com")') ?? null) !== null,
  audience: (a, cfg) => (cfg.audience = a.list(() => text(a, 'an audience ("orders")')) ?? null) !== null,
  jwks(a, cfg) {
    const at = a.peek()
    const url = a.url()
    cfg.jwks = url && at ? { url, span: at.span } : null
    return cfg.jwks !== null
  },
  key: (a, cfg) => (cfg.key = a.secret() ?? null) !== null,
  algorithms: (a, cfg) => (cfg.algorithms = readAlgorithms(a) ?? null) !== null,
  leeway: (a, cfg) => (cfg.leewayMs = a.duration('a duration like 30s') ?? -1) !== -1,
  cooldown: (a, cfg) => (cfg.cooldownMs = a.duration('a duration like 30s') ?? -1) !== -1,
  'app-claim': (a, cfg) => (cfg.appClaim = text(a, 'a claim name (azp)') ?? null) !== null,
}

function read(a: ArgCursor): JwtConfig | undefined {
  const cfg: JwtConfig = {
    issuer: null,
    audience: null,
    jwks: null,
    key: null,
    algorithms: null,
    leewayMs: 0,
    cooldownMs: DEFAULT_COOLDOWN_MS,
    appClaim: null,
  }
  const names = Object.keys(OPTIONS)
  const seen = new Set<string>()
  let ok = true
  // Options in any order, up to the end or an `or`.
  for (let w = a.peek(); w && w.kind === 'word' && w.text !== 'or'; w = a.peek()) {
    const option = Object.hasOwn(OPTIONS, w.text) ? w.text : undefined
    if (!option) {
      const near = didYouMean(w.text, names)
      const hint = near ? `did you mean '${near}'?` : `options: ${names.join(', ')}`
      return a.fail('unknown-option', `unknown option '${w.text}' of 'require jwt'; ${hint}`, w.span)
    }
    a.accept(option)
    if (seen.has(option)) ok = a.fail('duplicate-option', `'${option}' is given twice`, w.span) ?? false
    seen.add(option)
    if (!OPTIONS[option]!(a, cfg)) ok = false
  }
  return ok ? cfg : undefined
}

// Kit builds: a verifier of the testing kit's key with the route's issuer, audience and leeway,
// and the test telling its tokens apart (their header names the kit's key id).
function testVerifier(cfg: JwtConfig, c: CompileContext): { verify: Verifier; mine(token: string): boolean } | null {
  const k = c.testJwtKey
  if (k === null) return null
  const material = readKeyMaterial(k.publicKey)
  if (typeof material === 'string') throw new Error(`the testing kit's JWT key: ${material}`)
  const { verifier, release } = acquireVerifier({
    issuer: cfg.issuer,
    audience: cfg.audience,
    algorithms: [k.alg],
    leewaySeconds: cfg.leewayMs / 1000,
    keys: { material, text: k.publicKey },
  })
  c.onDispose(release)
  return {
    verify: verifier,
    mine(token) {
      try {
        return decodeProtectedHeader(token).kid === k.kid
      } catch {
        return false
      }
    },
  }
}

// The key text of `key env|file`, read the same way at check and at compile time.
function keysOf(cfg: JwtConfig, secret: (ref: SecretRef) => string | undefined): { material: KeyMaterial; text: string } | string | undefined {
  const t = secret(cfg.key!)
  if (t === undefined) return undefined
  const m = readKeyMaterial(t)
  return typeof m === 'string' ? m : { material: m, text: t }
}

function check(cfg: JwtConfig, ctx: CheckContext, at: Span): void {
  const bag = ctx.bag
  if (!cfg.jwks && !cfg.key) {
    bag.error('missing-keys', "'require jwt' needs the issuer's keys: jwks URL, key env NAME or key file \"path\"", at)
    return
  }
  if (cfg.jwks && cfg.key) bag.error('conflicting-keys', "'require jwt' takes either jwks or key, not both", cfg.key.span)
  if (cfg.jwks && cfg.jwks.url.protocol === 'http:' && !LOOPBACK.has(cfg.jwks.url.hostname))
    bag.error(
      'insecure-jwks',
      'the JWK set must be fetched over https (http only from 127.0.0.1 or localhost): on plain http anyone on the way can swap the keys',
      cfg.jwks.span,
    )
  if (cfg.key && !cfg.jwks) {
    const keys = keysOf(cfg, ctx.secret)
    if (keys === undefined) return
    if (typeof keys === 'string') return void bag.error('bad-key', keys, cfg.key.span)
    const algs = algorithmsFor(cfg.algorithms?.names ?? null, keys.material)
    if (typeof algs === 'string') bag.error('bad-algorithm', algs, cfg.algorithms?.span ?? cfg.key.span)
    return
  }
  const algs = algorithmsFor(cfg.algorithms?.names ?? null, 'jwks')
  if (typeof algs === 'string') bag.error('bad-algorithm', algs, cfg.algorithms!.span)
}

export default defineRequire<JwtConfig>({
  name: 'jwt',
  options: '[issuer "…"] [audience "…"] (jwks URL | key env NAME | key file "path") [algorithms ALG, …] [leeway D] [cooldown D] [app-claim CLAIM]',
  summary:
    'Verifies an `Authorization: Bearer` JWT (jose; asymmetric algorithms unless listed, never `none`): binds `jwt.*`, the user (`sub`) and the app whose `jwt-subject` the token names.',
  binds: ['jwt', 'app', 'user'],
  challenge: 'Bearer',
  read,
  check,
  compile(cfg, c) {
    const keys = cfg.jwks ? { jwks: cfg.jwks.url, cooldownMs: cfg.cooldownMs } : (keysOf(cfg, c.secret) as { material: KeyMaterial; text: string })
    const algorithms = algorithmsFor(cfg.algorithms?.names ?? null, 'jwks' in keys ? 'jwks' : keys.material) as string[]
    const { verifier, release } = acquireVerifier({
      issuer: cfg.issuer,
      audience: cfg.audience,
      algorithms,
      leewaySeconds: cfg.leewayMs / 1000,
      keys,
    })
    c.onDispose(release)
    const testing = testVerifier(cfg, c)
    const apps = c.apps
    const now = c.now
    const appClaims = cfg.appClaim ? [cfg.appClaim] : APP_CLAIMS

    // The verified claims → who is calling. A token need not name an app; one whose claim may
    // name a store app while the store is down is refused (that app may have been revoked).
    function identityOf(ctx: RequestContext, v: Verdict): Identity | GatewayError {
      if (v instanceof GatewayError) return v
      let app: App | null = null
      for (const claim of appClaims) {
        const subject = v[claim]
        if (typeof subject !== 'string' || subject === '') continue
        const found = apps.bySubject(subject)
        if (found === 'unavailable') return storeDown()
        if (found) {
          app = found
          break
        }
      }
      const user = typeof v.sub === 'string' ? { id: v.sub, info: v } : null
      if (app === null) return { app, user, jwt: v, via: 'jwt' }
      const id = appIdentity(ctx, app, 'jwt')
      if (id instanceof GatewayError) return id
      id.user = user
      id.jwt = v
      return id
    }

    return function jwt(ctx) {
      const auth = ctx.req.headers.get('authorization')
      // The scheme is case-insensitive (RFC 9110 §11.1); another scheme is another credential.
      if (auth === null || auth.length < 7 || auth.charCodeAt(6) !== 32 || auth.slice(0, 6).toLowerCase() !== 'bearer') return null
      const token = auth.slice(7).trim()
      if (token === '') return unauthenticated('the bearer token is empty', CHALLENGE_INVALID)
      const v = (testing?.mine(token) ? testing.verify : verifier).verify(token, now())
      return v instanceof Promise ? v.then((r) => identityOf(ctx, r)) : identityOf(ctx, v)
    }
  },
})
