// `require mtls`: the client certificate presented on the TLS listener must chain to
// --client-ca and be within its validity; its SHA-256 fingerprint (of the DER) selects the
// app. Behind a TLS terminator the gateway trusts (--trust-proxy), the fingerprint may come
// in X-Forwarded-Client-Cert instead (Envoy's format, `Hash=` lower-case hex), from those
// peers only. A revoked app is refused at once: the app is looked up on every request.
import { identify, unauthenticated } from '../runtime/auth.ts'
import type { RequestContext } from '../runtime/context.ts'
import { defineRequire } from './require-common.ts'

const HASH = /^[0-9a-f]{64}$/

// The element the nearest proxy added is the last one (proxies append); its Hash= field.
export function xfccHash(header: string): string | null {
  const elements = header.split(',')
  const last = elements[elements.length - 1]!
  for (const pair of last.split(';')) {
    const eq = pair.indexOf('=')
    if (eq === -1) continue
    if (pair.slice(0, eq).trim().toLowerCase() !== 'hash') continue
    const v = pair
      .slice(eq + 1)
      .trim()
      .replace(/^"|"$/g, '')
      .toLowerCase()
    return HASH.test(v) ? v : null
  }
  return null
}

// The presented fingerprint, an error, or null when none was presented.
function presented(ctx: RequestContext): string | ReturnType<typeof unauthenticated> | null {
  const cert = ctx.clientCert
  if (cert) return cert.authorized ? cert.sha256 : unauthenticated(`the client certificate is not accepted: ${cert.reason ?? 'untrusted'}`)
  if (!ctx.trusted) return null
  const xfcc = ctx.req.headers.get('x-forwarded-client-cert')
  if (xfcc === null) return null
  return xfccHash(xfcc) ?? unauthenticated('X-Forwarded-Client-Cert carries no usable Hash')
}

export default defineRequire<Record<string, never>>({
  name: 'mtls',
  options: '',
  summary: 'Identifies the app by its TLS client certificate (chained to --client-ca; SHA-256 of the DER), or by XFCC from --trust-proxy peers.',
  binds: ['app'],
  challenge: 'Mutual',
  read: () => ({}),
  compile(_cfg, c) {
    const apps = c.apps
    return function clientCertificate(ctx) {
      const fp = presented(ctx)
      if (fp === null || typeof fp !== 'string') return fp
      return identify(ctx, apps.byCert(fp), 'mtls', 'client certificate')
    }
  },
})
