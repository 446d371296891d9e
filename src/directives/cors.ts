// `cors * | origins ORIGIN, … [methods …] [headers …] [expose …] [credentials] [max-age D]`:
// cross-origin access for browsers (the Fetch standard's CORS protocol). The gateway answers
// the route's preflights itself, before any `require` (a preflight carries no credentials) and
// without the upstream, and puts the CORS headers on every other answer of the route, gateway
// errors included, in place of any the upstream sent. docs/cors.md is the user's guide.
import { unquote } from '../policy/ast.ts'
import type { ArgCursor } from '../policy/cursor.ts'
import type { Span } from '../policy/source.ts'
import { CorsPolicy, type CorsSpec, type OriginSpec } from '../runtime/cors.ts'
import { defineDirective } from './define.ts'

type Origin = { kind: 'null' } | { kind: 'exact'; key: string } | { kind: 'wildcard'; scheme: string; suffix: string; port: string }

const OPTIONS = ['methods', 'headers', 'expose', 'credentials', 'max-age'] as const
// The methods a page's fetch() can send (TRACE and CONNECT are forbidden to it).
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/
const MAX_AGE_MS = 86_400_000 // Firefox keeps a preflight 24 h at most, Chromium 2 h

// An origin as written in a policy: `null`, `scheme://host[:port]`, or `scheme://*.domain[:port]`
// (any depth of subdomain, never the domain itself). A string is what is wrong with it.
export function parseOrigin(text: string): Origin | string {
  if (text === 'null') return { kind: 'null' }
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*)$/s.exec(text)
  if (!m) return `'${text}' is not an origin: write scheme://host[:port], like https://app.example.com`
  const scheme = m[1]!.toLowerCase()
  if (scheme !== 'http' && scheme !== 'https') return `'${text}' is not a web origin: the scheme must be http or https`
  const rest = m[2]!
  const cut = rest.search(/[/?#]/)
  const authority = cut === -1 ? rest : rest.slice(0, cut)
  if (cut !== -1) {
    const tail = rest.slice(cut)
    return tail === '/'
      ? `an origin has no path: write '${scheme}://${authority}', without the trailing '/'`
      : `an origin is scheme://host[:port] only, with no path, query or fragment: remove '${tail}'`
  }
  if (authority.includes('@')) return `an origin has no user name or password: remove '${authority.slice(0, authority.lastIndexOf('@') + 1)}'`
  const wildcard = authority.startsWith('*.')
  const hostPort = wildcard ? authority.slice(2) : authority
  if (hostPort.includes('*')) return `'*' may only stand for the leftmost labels of the host, as in https://*.example.com`
  let u: URL
  try {
    u = new URL(`${scheme}://${wildcard ? `x.${hostPort}` : hostPort}`)
  } catch {
    return `'${text}' is not a valid origin: its host or port is malformed`
  }
  if (!wildcard) return { kind: 'exact', key: `${scheme}://${u.host}` }
  const domain = u.hostname.slice(2)
  if (!domain.includes('.') || domain.startsWith('[')) {
    return `'${text}' would allow too much: name a domain of at least two labels after '*.', as in https://*.example.com`
  }
  return { kind: 'wildcard', scheme, suffix: `.${domain}`, port: u.port }
}

function readOrigin(a: ArgCursor): Origin | undefined {
  const at = a.peek()
  if (at?.kind === 'star') return a.fail('bad-origin', "'*' allows every origin and stands alone: cors * (or origins *)", at.span)
  const arg = a.expect(['string', 'url', 'word', 'malformed', 'ip4', 'ip6', 'path', 'number'], 'an origin like "https://app.example.com"')
  if (!arg) return undefined
  const o = parseOrigin(arg.kind === 'string' ? unquote(arg.text) : arg.text)
  return typeof o === 'string' ? a.fail('bad-origin', o, arg.span) : o
}

function readMethod(a: ArgCursor): string | undefined {
  const w = a.word('a method like GET')
  if (!w) return undefined
  if (METHODS.includes(w.text)) return w.text
  const upper = w.text.toUpperCase()
  if (METHODS.includes(upper)) return a.fail('bad-method', `methods are upper case: write ${upper}`, w.span)
  if (upper === 'TRACE' || upper === 'CONNECT') return a.fail('bad-method', `browsers never send ${upper} from a page: it needs no cors`, w.span)
  return a.fail('bad-method', `'${w.text}' is not a method cors can allow (${METHODS.join(', ')})`, w.span)
}

function readHeader(a: ArgCursor): string | undefined {
  const w = a.word('a header name')
  if (!w) return undefined
  return HEADER_NAME.test(w.text) ? w.text : a.fail('bad-argument', `'${w.text}' is not a header name`, w.span)
}

// `*`, or a list read by `item`.
function starOr<T>(a: ArgCursor, item: () => T | undefined): T[] | '*' | undefined {
  return a.acceptKind('star') ? '*' : a.list(item)
}

export default defineDirective<{ spec: CorsSpec }, 'access'>({
  name: 'cors',
  stage: 'access',
  places: ['route', 'defaults'],
  once: true,
  usage: 'cors * | origins ORIGIN, … [methods M, …|*] [headers H, …|*] [expose H, …|*] [credentials] [max-age DURATION]',
  summary:
    "Cross-origin access for browsers: answers the route's preflights itself (before authentication, never upstream) and puts Access-Control-* and Vary: Origin on every answer, errors included.",
  read(a) {
    const origins: OriginSpec & { exact: string[]; wildcards: OriginSpec['wildcards'][number][] } = {
      any: false,
      exact: [],
      wildcards: [],
      allowNull: false,
    }
    let star = a.acceptKind('star')
    if (!star) {
      if (!a.accept('origins'))
        return a.fail('missing-argument', '\'cors\' expects the origins it allows: cors origins "https://app.example.com", … or cors *')
      star = a.acceptKind('star')
    }
    if (star) origins.any = true
    else {
      const list = a.list(() => readOrigin(a))
      if (!list) return undefined
      for (const o of list) {
        if (o.kind === 'null') origins.allowNull = true
        else if (o.kind === 'exact') origins.exact.push(o.key)
        else origins.wildcards.push({ scheme: o.scheme, suffix: o.suffix, port: o.port })
      }
    }
    const spec: CorsSpec = { origins, methods: null, headers: [], expose: [], credentials: false, maxAgeSeconds: null }
    const given = new Map<string, Span>()
    while (!a.done()) {
      const at = a.peek()!
      const option = a.oneOf(OPTIONS, 'an option')
      if (!option) return undefined
      if (given.has(option)) return a.fail('bad-argument', `'${option}' is given twice`, at.span)
      given.set(option, at.span)
      if (option === 'credentials') spec.credentials = true
      else if (option === 'max-age') {
        const ms = a.duration('a duration like 10m')
        if (ms === undefined) return undefined
        if (ms % 1000 !== 0) return a.fail('bad-argument', 'max-age counts whole seconds', a.peek(-1)?.span)
        if (ms > MAX_AGE_MS)
          return a.fail('bad-argument', 'browsers keep a preflight a day at most (Chromium 2h): max-age is 1d or less', a.peek(-1)?.span)
        spec.maxAgeSeconds = ms / 1000
      } else {
        const list = starOr(a, () => (option === 'methods' ? readMethod(a) : readHeader(a)))
        if (!list) return undefined
        spec[option] = list
      }
    }
    if (spec.credentials && (star || spec.expose === '*')) {
      const which = star ? 'every origin (*)' : "'expose *'"
      return void a.bag.error(
        'cors-credentials',
        `'credentials' cannot go with ${which}: browsers refuse a literal '*' on a request with credentials`,
        given.get('credentials'),
        star
          ? { message: 'list the origins that may send credentials instead of *', span: star.span }
          : { message: 'list the headers to expose instead of *', span: given.get('expose') },
      )
    }
    return { spec: Object.freeze(spec) }
  },
  compile(cfg, c) {
    const policy = new CorsPolicy(cfg.spec)
    c.preflight(function corsPreflight(ctx) {
      return policy.preflight(ctx)
    })
    c.everyAnswer('cors', function cors(ctx, headers) {
      policy.answer(ctx, headers)
    })
    return null
  },
})
