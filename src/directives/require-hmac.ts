// `require hmac [window D] [covers "COMPONENT"…]`: RFC 9421 HTTP Message Signatures. The app is
// the one whose `key` is the signature's keyid; hmac-sha256 uses its secret(s), ed25519,
// rsa-pss-sha512 and ecdsa-p256-sha256 / -p384-sha384 its public key. The signature is checked
// against the request as the client sent it, before any rewrite; a body is read whole (at most
// the route's `limit body`, else 1 MiB) to check its Content-Digest, and those bytes go upstream.
// The nonce is claimed in the store after everything else passed, so a refused request burns none.
import { appIdentity, storeDown, unauthenticated } from '../runtime/auth.ts'
import { GatewayError } from '../runtime/gateway-error.ts'
import { componentOfText, signedRequestOf } from '../runtime/signatures/components.ts'
import { contentDigestProblem } from '../runtime/signatures/content-digest.ts'
import { FUTURE_SKEW_MS, verifySignature } from '../runtime/signatures/verify.ts'
import type { Span } from '../policy/source.ts'
import { defineRequire } from './require-common.ts'

const DEFAULT_WINDOW_MS = 300_000
// Nonces are kept for the window: a day bounds what the store holds per app, and a signed
// request that may arrive a day late is one an attacker can hold back for a day.
const MAX_WINDOW_MS = 86_400_000
const BODY_CAP = 1024 * 1024

interface HmacConfig {
  windowMs: number
  windowSpan: Span | null
  covers: { text: string; span: Span }[]
}

export default defineRequire<HmacConfig>({
  name: 'hmac',
  options: '[window D] [covers "COMPONENT"…]',
  summary:
    "Verifies an RFC 9421 HTTP Message Signature of the request as the client sent it (hmac-sha256 with the app's secret; ed25519, rsa-pss-sha512 or ECDSA with its public-key), with Content-Digest, a fresh `created` and a one-time nonce.",
  binds: ['app'],
  challenge: 'Signature',
  read(a) {
    const cfg: HmacConfig = { windowMs: DEFAULT_WINDOW_MS, windowSpan: null, covers: [] }
    for (;;) {
      const w = a.accept('window')
      if (w) {
        if (cfg.windowSpan) return a.fail('duplicate-option', "'window' is given twice", w.span)
        const span = a.peek()?.span ?? w.span
        const ms = a.duration('a window like 60s')
        if (ms === undefined) return undefined
        cfg.windowMs = ms
        cfg.windowSpan = span
        continue
      }
      const c = a.accept('covers')
      if (c) {
        if (cfg.covers.length) return a.fail('duplicate-option', "'covers' is given twice", c.span)
        do {
          const s = a.string('a component like "@path" or "x-date"')
          if (!s) return undefined
          cfg.covers.push({ text: s.value, span: s.arg.span })
        } while (a.peek()?.kind === 'string')
        continue
      }
      return cfg
    }
  },
  check(cfg, ctx, at) {
    if (ctx.perWorkerStore)
      ctx.bag.error('needs-redis', "'require hmac' needs --redis when the gateway runs --workers", at, {
        message: 'each worker would keep its own nonces, so a request replayed to another worker would pass',
      })
    if (cfg.windowMs > MAX_WINDOW_MS && cfg.windowSpan)
      ctx.bag.error('bad-window', 'a signature window is at most 1d: the store keeps every nonce for the window', cfg.windowSpan)
    for (const c of cfg.covers) {
      const parsed = componentOfText(c.text)
      if (typeof parsed === 'string') ctx.bag.error('bad-component', parsed, c.span)
    }
  },
  compile(cfg, c) {
    const covers = cfg.covers.map((x) => {
      const parsed = componentOfText(x.text)
      if (typeof parsed === 'string') throw new Error(parsed)
      return parsed.id
    })
    const rules = Object.freeze({ windowMs: cfg.windowMs, covers: Object.freeze(covers) })
    // A created up to FUTURE_SKEW_MS ahead stays acceptable that much longer: so does its nonce.
    const nonceMs = cfg.windowMs + FUTURE_SKEW_MS
    const { apps, store, now } = c
    return async function httpSignature(ctx) {
      const headers = ctx.req.headers
      const input = headers.get('signature-input')
      const signature = headers.get('signature')
      if (input === null && signature === null) return null
      if (input === null || signature === null) return unauthenticated('a signed request carries both Signature-Input and Signature')
      const hasBody = ctx.req.body !== null
      const v = verifySignature(input, signature, signedRequestOf(ctx), hasBody, apps, rules, now())
      if (v instanceof GatewayError) return v

      const digest = headers.get('content-digest')
      if (hasBody || v.coversDigest) {
        let body: Uint8Array
        try {
          body = await ctx.readBody(ctx.bodyLimit ?? BODY_CAP)
        } catch (err) {
          if (err instanceof GatewayError) return err
          throw err
        }
        const problem = digest === null ? 'the request has no Content-Digest' : contentDigestProblem(digest, body)
        if (problem) return unauthenticated(problem)
      }

      let fresh: boolean
      try {
        fresh = await store.claimOnce(`hmac:${v.keyid}:${v.nonce}`, nonceMs)
      } catch {
        return storeDown()
      }
      if (!fresh) return unauthenticated('the signature nonce was used before (a replay)')
      const id = appIdentity(ctx, v.app, 'hmac')
      if (id instanceof GatewayError) return id
      id.signature = { label: v.label, value: v.value }
      return id
    }
  },
})
