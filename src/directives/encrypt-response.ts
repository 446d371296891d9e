// `encrypt response [to app.public-key] [max SIZE]`: the answer's body becomes a compact JWE for
// the calling app (docs/payloads.md): `dir` + A256GCM with a key derived from its secret, or
// RSA-OAEP-256 / ECDH-ES+A256KW to its public key. Content-Type becomes application/jose and the
// upstream's goes into the protected header as `cty`. The body is read whole, at most SIZE
// (default DEFAULT_ANSWER_CAP, 8 MiB); a longer one is a 502 and nothing of it reaches the client.
import { DEFAULT_ANSWER_CAP, readAnswer, withBody } from '../runtime/answer-body.ts'
import type { RequestContext } from '../runtime/context.ts'
import { GatewayError } from '../runtime/gateway-error.ts'
import { callerApp, encryptionKeyOf, withSecret } from '../runtime/payload/caller.ts'
import { encryptDirect, encryptTo } from '../runtime/payload/jwe.ts'
import { currentKey } from '../runtime/payload/keys.ts'
import { defineDirective } from './define.ts'
import { checkBoundApp, readMax } from './payload-common.ts'

const NAME = 'encrypt response'
const utf8 = new TextEncoder()

interface EncryptConfig {
  toPublicKey: boolean
  cap: number
}

export default defineDirective<EncryptConfig, 'response'>({
  name: NAME,
  stage: 'response',
  // A cached answer is the upstream's plaintext: it is encrypted for each caller, never stored encrypted.
  after: ['cache response'],
  places: ['route'],
  usage: 'encrypt response [to app.public-key] [max SIZE]',
  summary:
    "Turns the answer's body into a compact JWE for the calling app (dir + A256GCM with a key derived from its secret, or RSA-OAEP-256 / ECDH-ES+A256KW to its public-key); buffers at most SIZE (default 8mb), 502 beyond.",
  read(a) {
    const cfg: EncryptConfig = { toPublicKey: false, cap: DEFAULT_ANSWER_CAP }
    if (a.accept('to')) {
      const w = a.word('app.public-key')
      if (!w) return undefined
      if (w.text !== 'app.public-key') return a.fail('bad-argument', `'encrypt response to' takes app.public-key, found '${w.text}'`, w.span)
      cfg.toPublicKey = true
    }
    const cap = readMax(a)
    if (cap === undefined) return undefined
    if (cap !== null) cfg.cap = cap
    a.end()
    return cfg
  },
  check(_cfg, ctx, at) {
    checkBoundApp(NAME, ctx, at)
  },
  // The upstream is asked for the plain representation: its Content-Encoding could not be
  // told to the partner once the body is inside the JWE.
  setsHeaders: () => ['accept-encoding'],
  compile(cfg, c) {
    const { cap, toPublicKey } = cfg
    // What the answer is encrypted with, or the 403 that ends the request.
    function keyOf(ctx: RequestContext) {
      const app = callerApp(ctx, NAME)
      if (toPublicKey) return { app, to: encryptionKeyOf(app, NAME) }
      const withKey = withSecret(app, NAME, c.now())
      return { app: withKey, secret: currentKey(withKey, 'response', c.now())! }
    }
    return {
      // Before the upstream is called: a caller whose answer could not be encrypted is refused.
      before(ctx) {
        keyOf(ctx)
        return null
      },
      async run(ctx, res) {
        const k = keyOf(ctx)
        if (res.status === 204 || res.status === 304) return res
        if (ctx.method === 'HEAD') {
          // The headers a GET would get; the length of its JWE is not known.
          res.headers.set('content-type', 'application/jose')
          res.headers.delete('content-length')
          return res
        }
        const coding = res.headers.get('content-encoding')
        if (coding !== null && coding.toLowerCase() !== 'identity') {
          void res.body?.cancel().catch(() => {})
          throw new GatewayError('bad_gateway', `the upstream answer is content-encoded (${coding}); encrypt response needs the plain body`)
        }
        const plain = await readAnswer(res, cap, NAME)
        const cty = res.headers.get('content-type')
        const kid = k.app.key
        const jwe = k.to ? await encryptTo(plain, k.to, kid, cty) : await encryptDirect(plain, k.secret, kid!, cty)
        return withBody(ctx, res, utf8.encode(jwe), {
          'content-type': 'application/jose',
          'content-encoding': null,
          'content-digest': null,
          'repr-digest': null,
        })
      },
    }
  },
})
