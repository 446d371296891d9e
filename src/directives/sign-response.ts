// `sign response [max SIZE]`: an RFC 9421 signature on the answer (docs/payloads.md): label sig1,
// hmac-sha256 with a key derived from the app's secret (info "portcullis response-signature v1 "
// + key), covering "@status", "content-type" (when the answer has one), "content-digest",
// "@method";req, "@target-uri";req and, for a signed request, "signature";req;key="<label>".
// Content-Digest (sha-256) is over the body delivered. It runs after the directives that change
// the answer, so the signature covers what the client gets. The body is read whole, at most SIZE
// (default DEFAULT_ANSWER_CAP, 8 MiB); a longer one is a 502.
import { DEFAULT_ANSWER_CAP, readAnswer, withBody } from '../runtime/answer-body.ts'
import type { RequestContext } from '../runtime/context.ts'
import { callerApp, withSecret } from '../runtime/payload/caller.ts'
import { currentKey } from '../runtime/payload/keys.ts'
import { signResponse } from '../runtime/payload/response-signature.ts'
import { defineDirective } from './define.ts'
import { checkBoundApp, readMax } from './payload-common.ts'

const NAME = 'sign response'
const EMPTY = new Uint8Array(0)

export default defineDirective<{ cap: number }, 'response'>({
  name: NAME,
  stage: 'response',
  places: ['route'],
  usage: 'sign response [max SIZE]',
  summary:
    "Signs the answer (RFC 9421, hmac-sha256 with a key derived from the app's secret) over its status, Content-Type, Content-Digest and the request's method, URI and signature; buffers at most SIZE (default 8mb).",
  after: ['encrypt response', 'set response header', 'remove response header', 'cache response', 'script response'],
  read(a) {
    const cap = readMax(a)
    if (cap === undefined) return undefined
    a.end()
    return { cap: cap ?? DEFAULT_ANSWER_CAP }
  },
  check(_cfg, ctx, at) {
    checkBoundApp(NAME, ctx, at)
  },
  compile(cfg, c) {
    const cap = cfg.cap
    function appOf(ctx: RequestContext) {
      return withSecret(callerApp(ctx, NAME), NAME, c.now())
    }
    return {
      // Before the upstream is called: a caller whose answer could not be signed is refused.
      before(ctx) {
        appOf(ctx)
        return null
      },
      async run(ctx, res) {
        const now = c.now()
        const app = appOf(ctx)
        const key = currentKey(app, 'response-signature', now)!
        const noBody = res.status === 204 || res.status === 304 || ctx.method === 'HEAD'
        const body = noBody ? EMPTY : await readAnswer(res, cap, NAME)
        const signed = signResponse(ctx, res.status, res.headers.get('content-type'), body, key, app.key, now)
        if (!noBody) return withBody(ctx, res, body, signed)
        for (const [name, value] of Object.entries(signed)) res.headers.set(name, value)
        return res
      },
    }
  },
})
