// `decrypt request [max SIZE]`: the request body is a compact JWE the calling app made with its
// request key (`dir` + A256GCM, HKDF of its secret with info "portcullis request v1 " + key;
// docs/payloads.md). The upstream gets the plaintext, with the `cty` of the protected header as
// its Content-Type (none without a cty). Anything else, a JWE that does not decrypt with a secret
// of the app valid now included, is a 400 bad_request before the upstream is reached. The body is
// read whole: at most SIZE (default 1 MiB) and the route's `limit body`, else 413. A request
// without a body passes as it is. Nothing of the plaintext is logged.
import type { RequestContext } from '../runtime/context.ts'
import { GatewayError } from '../runtime/gateway-error.ts'
import { callerApp, withSecret } from '../runtime/payload/caller.ts'
import { decryptDirect, mediaTypeOf } from '../runtime/payload/jwe.ts'
import { validKeys } from '../runtime/payload/keys.ts'
import { defineDirective } from './define.ts'
import { checkBoundApp, readMax } from './payload-common.ts'

const NAME = 'decrypt request'
const DEFAULT_CAP = 1024 * 1024
// RFC 9110 media type: type/subtype, then parameters of visible ASCII (no CR, LF or controls).
const MEDIA_TYPE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+\/[!#$%&'*+\-.^_`|~0-9A-Za-z]+(\s*;[\x20-\x7e]*)?$/

export default defineDirective<{ cap: number }, 'rewrite'>({
  name: NAME,
  stage: 'rewrite',
  places: ['route'],
  usage: 'decrypt request [max SIZE]',
  summary:
    "The request body must be a compact JWE (dir + A256GCM) made with the calling app's request key: the upstream gets the plaintext, with the JWE `cty` as Content-Type; 400 otherwise. Reads at most SIZE (default 1mb).",
  read(a) {
    const cap = readMax(a)
    if (cap === undefined) return undefined
    a.end()
    return { cap: cap ?? DEFAULT_CAP }
  },
  check(_cfg, ctx, at) {
    checkBoundApp(NAME, ctx, at)
  },
  // The client's Content-Type and digests describe the JWE; the upstream gets the plaintext's
  // type (cty) and no digest of bytes it does not receive.
  setsHeaders: () => ['content-type', 'content-digest', 'repr-digest'],
  compile(cfg, c) {
    const cap = cfg.cap
    return async function decryptRequest(ctx: RequestContext) {
      if (ctx.body === 'none') return undefined
      let body: Uint8Array
      let app
      try {
        body = await ctx.readBody(cap)
        if (body.byteLength === 0) return undefined
        app = withSecret(callerApp(ctx, NAME), NAME, c.now())
      } catch (err) {
        if (err instanceof GatewayError) return err
        throw err
      }
      const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('latin1').trim()
      const r = await decryptDirect(text, validKeys(app, 'request', c.now()), app.key)
      if ('problem' in r) return new GatewayError('bad_request', r.problem)
      let type: string | null = null
      if (r.cty !== null) {
        type = mediaTypeOf(r.cty)
        if (!MEDIA_TYPE.test(type)) return new GatewayError('bad_request', 'the JWE cty is not a media type')
      }
      ctx.bufferedBody = r.plaintext
      ctx.setUpstreamHeader('content-type', type)
      return undefined
    }
  },
})
