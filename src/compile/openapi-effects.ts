// What each directive adds to a route's OpenAPI operation (`gateway openapi`): the answers it
// can give, the credentials it asks for, the headers it puts on later answers. One entry per
// directive name; a directive with nothing to say is listed in QUIET (a test keeps the two lists
// covering the registry, so a new directive needs a decision here).
import type { Template } from '../policy/template.ts'
import { GatewayError, type GatewayErrorCode } from '../runtime/gateway-error.ts'
import { canonicalName } from '../runtime/headers.ts'

export type Json = Record<string, unknown>

export const ref = (kind: 'schemas' | 'headers' | 'responses', name: string): Json => ({ $ref: `#/components/${kind}/${name}` })

// One possible answer of an operation; answers with one status are merged into one response.
export interface Part {
  status: string // "401", or "default"
  description: string
  codes: GatewayErrorCode[] // gateway errors (a problem+json body)
  headers: Map<string, Json>
  content: Map<string, Json>
  terminal: boolean // the terminal's answer (response-stage body steps apply to it)
  tag?: string // the directive that made it, where a later use may replace it
}

// Named components of the whole document (security schemes, headers): the same object twice is
// one entry; another object under a taken name gets a suffix.
export class Named {
  readonly all = new Map<string, Json>()
  constructor(seed: Record<string, Json> = {}) {
    for (const [n, v] of Object.entries(seed)) this.all.set(n, v)
  }
  add(base: string, value: Json): string {
    const name0 = base.replace(/[^A-Za-z0-9._-]/g, '_')
    const text = JSON.stringify(value)
    for (let i = 1; ; i++) {
      const name = i === 1 ? name0 : `${name0}-${i}`
      const had = this.all.get(name)
      if (had === undefined) this.all.set(name, value)
      if (had === undefined || JSON.stringify(had) === text) return name
    }
  }
}

const text = (description: string) => ({ description, schema: { type: 'string' } })
const int = (description: string) => ({ description, schema: { type: 'integer', minimum: 0 } })
export const FIXED_HEADERS: Record<string, Json> = {
  'X-Request-Id': text('The id of the request (also in the access log)'),
  'Gateway-Error': { description: 'The code of the gateway error (the end of the problem type)', required: true, schema: { type: 'string' } },
  'Retry-After': int('Seconds until a request may be admitted'),
  'RateLimit-Limit': int('The tightest limit of the route'),
  'RateLimit-Remaining': int('Requests left in its window'),
  'RateLimit-Reset': int('Seconds until its window moves on'),
  'RateLimit-Policy': text('The limits of the route, e.g. `"throttle";q=20;w=60` (IETF draft)'),
  RateLimit: text('The tightest limit now, e.g. `"throttle";r=7;t=41` (IETF draft)'),
  'WWW-Authenticate': text('The credentials the route takes (RFC 9110; RFC 6750 for Bearer)'),
  Signature: text("RFC 9421 response signature (`sig1`, hmac-sha256 with the app's response-signature key)"),
  'Signature-Input': text('The signature parameters of `Signature`'),
  'Content-Digest': text('RFC 9530 sha-256 digest of the body delivered'),
}

export const formatSize = (n: number) => (n % 1048576 === 0 ? `${n / 1048576} MiB` : n % 1024 === 0 ? `${n / 1024} KiB` : `${n} bytes`)

// One operation (a route and one method) as its directives are walked in the order they run.
export class Draft {
  readonly parts: Part[] = []
  // Headers set on every answer from here on (Deprecation, RateLimit-*).
  readonly headers = new Map<string, Json>()
  // Each `require` line (never inside a `when`): its alternatives, each a set of scheme names
  // (all of them needed).
  readonly security: string[][][] = []
  readonly scopes: string[] = []
  needsJwt = false // require scope / claim: only a verified token can pass
  readonly notes: string[] = []
  deprecated = false
  ended = false // an unconditional end in the access stage: nothing later runs
  retired = false
  bodyLimit: number | null = null
  requestBody: { description: string; content: Map<string, Json>; required: boolean } | null = null
  readonly limits = { throttle: false, quota: false, failure: null as 'allow' | 'deny' | null, lines: [] as string[] }
  // Set for each use: the `when` text of a guard that may or may not hold for this method.
  when: string | null = null

  constructor(
    readonly method: string,
    readonly schemes: Named,
    private readonly headerDefs: Named,
  ) {}

  // A header of the document's components, by reference.
  header(name: string, value: Json): Json {
    return ref('headers', this.headerDefs.add(name, value))
  }

  private add(part: Omit<Part, 'headers'> & { headers?: Map<string, Json> }): void {
    const headers = new Map(this.headers)
    for (const [n, h] of part.headers ?? []) headers.set(n, h)
    const description = this.when ? `${part.description} (when ${this.when})` : part.description
    this.parts.push({ ...part, description, headers })
  }

  // A gateway error this use can end the request with.
  error(code: GatewayErrorCode, why: string, headers: Record<string, Json> = {}): void {
    const e = new GatewayError(code, '')
    this.add({
      status: String(e.status),
      description: `${e.title} (\`${code}\`): ${why}`,
      codes: [code],
      headers: new Map(Object.entries(headers)),
      content: problem(),
      terminal: false,
    })
  }

  // An answer the route gives itself (a terminal's, a script's).
  answer(status: string, description: string, content: Record<string, Json> = {}, headers: Record<string, Json> = {}, terminal = true): void {
    this.add({ status, description, codes: [], headers: new Map(Object.entries(headers)), content: new Map(Object.entries(content)), terminal })
  }

  require(alternatives: string[][]): void {
    this.security.push(alternatives)
  }

  body(description: string, content: Record<string, Json>, required = false): void {
    this.requestBody = { description, content: new Map(Object.entries(content)), required }
  }

  // A header on every answer of the route, gateway errors included (response-stage header steps).
  everyAnswer(name: string, header: Json): void {
    for (const p of this.parts) p.headers.set(name, header)
  }

  terminalAnswers(change: (p: Part) => void): void {
    for (const p of this.parts) if (p.terminal) change(p)
  }
}

export const PROBLEM_TYPE = 'application/problem+json'
const problem = () => new Map([[PROBLEM_TYPE, { schema: ref('schemas', 'Problem') }]])

// The text of a template as written, `{param.id}` placeholders kept.
export function templateText(t: Template): string {
  return t.parts.map((p) => (typeof p === 'string' ? p.replace(/\{/g, '{{') : `{${p.ref}${p.rest ? '*' : ''}}`)).join('')
}

// ---- credentials -------------------------------------------------------------------------

type Chosen = { method: { name: string }; cfg: unknown }[]
type MethodEffect = (cfg: never, d: Draft) => string[][]

const HMAC_DESCRIPTION =
  "RFC 9421 HTTP Message Signature: `Signature-Input` and `Signature` headers, `keyid` = the app's `key`; hmac-sha256 with the app's secret (or ed25519, rsa-pss-sha512, ECDSA with its public key). The signature covers `@method`, `@target-uri` (or `@path` and `@query`) and, with a body, `content-digest`; it carries `created` (within the window) and a `nonce` accepted once. See docs/signing-requests.md."

const METHODS: Record<string, MethodEffect> = {
  hmac(cfg: { windowMs: number; covers: { text: string }[] }, d) {
    const covers = cfg.covers.length ? `; it must also cover ${cfg.covers.map((c) => `\`${c.text}\``).join(', ')}` : ''
    d.notes.push(`Signed requests (RFC 9421): \`created\` at most ${cfg.windowMs / 1000}s old${covers}.`)
    d.error(
      'payload_too_large',
      "the signed body is larger than the gateway reads to check its Content-Digest (the route's `limit body`, else 1 MiB)",
    )
    return [[d.schemes.add('httpSignature', { type: 'apiKey', in: 'header', name: 'Signature', description: HMAC_DESCRIPTION })]]
  },
  jwt(cfg: { issuer: string | null; audience: string[] | null; jwks: { url: URL } | null }, d) {
    const about = [
      cfg.issuer && `issuer ${cfg.issuer}`,
      cfg.audience && `audience ${cfg.audience.join(', ')}`,
      cfg.jwks && `keys from ${cfg.jwks.url.href}`,
    ]
    const description = `A JWT verified by the gateway${about.some(Boolean) ? `: ${about.filter(Boolean).join('; ')}` : ''}.`
    return [[d.schemes.add('jwt', { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description })]]
  },
  key(cfg: { header: string } | { query: string }, d) {
    const [where, name] =
      'header' in cfg
        ? (['header', canonicalName(cfg.header).replace(/(^|-)([a-z])/g, (m) => m.toUpperCase())] as const)
        : (['query', cfg.query] as const)
    const base = 'header' in cfg && cfg.header === 'x-api-key' ? 'apiKey' : `apiKey-${where}-${name}`
    return [
      [
        d.schemes.add(base, {
          type: 'apiKey',
          in: where,
          name,
          description: "The app's API key (`api-key`); the gateway removes it before proxying.",
        }),
      ],
    ]
  },
  mtls(_cfg, d) {
    return [
      [
        d.schemes.add('mutualTLS', {
          type: 'mutualTLS',
          description: "A TLS client certificate chained to the gateway's --client-ca; its SHA-256 fingerprint names the app.",
        }),
      ],
    ]
  },
  session(_cfg, d) {
    const about = 'An access token issued by the login route (opaque).'
    return [
      [d.schemes.add('session', { type: 'http', scheme: 'bearer', description: about })],
      [
        d.schemes.add('sessionQuery', {
          type: 'apiKey',
          in: 'query',
          name: 'access_token',
          description: `${about} Removed from the query before proxying.`,
        }),
      ],
    ]
  },
}
const BINDS_APP = new Set(['hmac', 'jwt', 'key', 'mtls'])

function requireEffect(chosen: Chosen, d: Draft): void {
  const alternatives = chosen.flatMap((c) => METHODS[c.method.name]!(c.cfg as never, d))
  const names = chosen.map((c) => c.method.name).join(' or ')
  d.require(alternatives)
  d.error('unauthenticated', `no valid ${names} credentials`, { 'WWW-Authenticate': ref('headers', 'WWW-Authenticate') })
  if (chosen.some((c) => BINDS_APP.has(c.method.name))) d.error('forbidden', 'the app may not call from this address (its `allow ip`)')
  d.error('store_unavailable', 'the store does not answer: credentials are never assumed valid')
}

// ---- the table ---------------------------------------------------------------------------

// How the effect sees a use: its configuration and the policy line that wrote it.
export type Effect = (cfg: never, d: Draft, line: string) => void

const refuses: Effect = (_cfg, d, line) => d.error('forbidden', `refused by \`${line}\``)
const script: Effect = (_cfg, d, line) => {
  d.answer('default', `an answer of the script (\`${line}\`): any status`, {}, {}, false)
  d.error('internal_error', `the script (\`${line}\`) threw or ran past its time budget`)
  d.error('store_unavailable', `the script's store calls (\`${line}\`) failed`)
}
const BODY_LIMIT = '413 of a body limit'
const TOKENS = { 'application/json': { schema: ref('schemas', 'SessionTokens') } }
const NO_STORE = { 'Cache-Control': { description: 'Never cached', schema: { type: 'string', const: 'no-store' } } }

export const EFFECTS: Record<string, Effect> = {
  'require hmac': requireEffect as Effect,
  'require jwt': requireEffect as Effect,
  'require key': requireEffect as Effect,
  'require mtls': requireEffect as Effect,
  'require session': requireEffect as Effect,
  'require scope'(cfg: { scopes: string[] }, d) {
    d.needsJwt = true
    d.scopes.push(...cfg.scopes)
    d.error('forbidden', `the token does not grant the scope${cfg.scopes.length > 1 ? 's' : ''} ${cfg.scopes.join(' ')}`, {
      'WWW-Authenticate': ref('headers', 'WWW-Authenticate'),
    })
  },
  'require claim'(cfg: { name: string; value: string }, d) {
    d.needsJwt = true
    d.notes.push(`The token's \`${cfg.name}\` claim must be "${cfg.value}".`)
    d.error('forbidden', `the token's \`${cfg.name}\` claim is not "${cfg.value}"`)
  },
  'allow app': refuses,
  'allow group': refuses,
  'allow ip': refuses,
  'deny ip': refuses,
  // The tightest of the route's limits is the one a client meets.
  'limit body'(cfg: { bytes: number }, d) {
    if (d.bodyLimit !== null && d.bodyLimit <= cfg.bytes) return
    const at = d.parts.findIndex((p) => p.tag === BODY_LIMIT)
    if (at !== -1) d.parts.splice(at, 1)
    d.bodyLimit = cfg.bytes
    d.error('payload_too_large', `the body is larger than ${formatSize(cfg.bytes)}`)
    d.parts.at(-1)!.tag = BODY_LIMIT
  },
  throttle(_cfg, d, line) {
    d.limits.throttle = true
    d.limits.lines.push(line)
  },
  quota(_cfg, d, line) {
    d.limits.quota = true
    d.limits.lines.push(line)
  },
  'on store-failure'(cfg: { policy: 'allow' | 'deny' }, d) {
    d.limits.failure = cfg.policy
  },
  status(cfg: { kind: 'deprecated'; since?: number; sunset?: number } | { kind: 'blocked' | 'retired' }, d) {
    if (cfg.kind === 'deprecated') {
      const value = cfg.since === undefined ? 'true' : `@${Math.floor(cfg.since / 1000)}`
      d.headers.set(
        'Deprecation',
        d.header('Deprecation', { description: 'RFC 9745: the route is deprecated', schema: { type: 'string', const: value } }),
      )
      if (cfg.sunset !== undefined) {
        const sunset = { description: 'RFC 8594: when the route goes away', schema: { type: 'string', const: new Date(cfg.sunset).toUTCString() } }
        d.headers.set('Sunset', d.header('Sunset', sunset))
      }
      if (d.when === null) d.deprecated = true
      return
    }
    if (cfg.kind === 'blocked') d.error('blocked', 'the route is switched off (`status blocked`)')
    else if (d.when !== null) d.error('retired', 'the route has been retired')
    if (d.when === null) {
      d.ended = true
      d.retired = cfg.kind === 'retired'
    }
  },
  'script access': script,
  'script rewrite': script,
  // It runs on the terminal's answer only (a gateway error is never given to it).
  'script response': (cfg, d, line) => void (d.parts.some((p) => p.terminal) && script(cfg, d, line)),
  'rewrite path'(_cfg, d) {
    d.error('bad_request', 'the rewritten path is malformed')
  },
  'decrypt request'(cfg: { cap: number }, d) {
    d.body(`A compact JWE (dir + A256GCM) made with the calling app's request key (docs/payloads.md); at most ${formatSize(cfg.cap)}.`, {
      'application/jose': { schema: { type: 'string' } },
    })
    d.error('bad_request', 'the body is not a JWE the app made with its request key')
    d.error('payload_too_large', `the body is larger than ${formatSize(cfg.cap)}`)
  },
  'encrypt response'(_cfg, d) {
    d.terminalAnswers((p) => {
      if (['101', '204', '304'].includes(p.status)) return
      p.content = new Map([
        [
          'application/jose',
          { schema: { type: 'string', description: "A compact JWE to the calling app's key; `cty` names the plain content type" } },
        ],
      ])
    })
    d.error('bad_gateway', 'the upstream answer cannot be encrypted (content-encoded, or too large)')
  },
  'sign response'(_cfg, d) {
    d.terminalAnswers((p) => {
      for (const h of ['Signature', 'Signature-Input', 'Content-Digest']) p.headers.set(h, ref('headers', h))
    })
    d.error('bad_gateway', 'the upstream answer cannot be signed (too large)')
  },
  'set response header'(cfg: { name: string; value: Template }, d) {
    const literal = cfg.value.parts.every((p) => typeof p === 'string')
    const schema = literal ? { type: 'string', const: cfg.value.parts.join('') } : { type: 'string' }
    const description = literal ? 'Set by the gateway' : `Set by the gateway: \`${templateText(cfg.value)}\``
    d.everyAnswer(cfg.name, d.header(cfg.name, { description, schema }))
  },
  'cache response'(cfg: { ttlText: string; perApp: boolean }, d) {
    d.notes.push(`Successful GET answers are cached for ${cfg.ttlText}${cfg.perApp ? ', per app' : ''}.`)
  },
  cors(_cfg, d, line) {
    d.notes.push(`Cross-origin requests: \`${line}\` (the gateway answers preflights).`)
  },
  proxy(cfg: { websocket?: boolean }, d, line) {
    d.answer('200', `the upstream's answer, passed through unchanged (\`${line}\`)`)
    d.answer('default', 'any other answer of the upstream, passed through unchanged')
    if (cfg.websocket) d.answer('101', 'Switching Protocols: a WebSocket to the upstream')
    d.error('bad_gateway', 'the upstream cannot be reached or its answer is broken')
    d.error('upstream_unavailable', 'no healthy target of the upstream')
    d.error('upstream_timeout', 'the upstream does not answer in time')
    if (['POST', 'PUT', 'PATCH'].includes(d.method) && !d.requestBody) {
      const limit = d.bodyLimit === null ? '' : `; at most ${formatSize(d.bodyLimit)}`
      d.body(`Passed to the upstream as sent${limit}.`, { '*/*': { schema: {} } })
    }
  },
  respond(cfg: { status: number; contentType: string; body?: Template }, d) {
    const fixed = cfg.body?.parts.every((p) => typeof p === 'string')
    const text = cfg.body ? (fixed ? cfg.body.parts.join('') : templateText(cfg.body)) : null
    let example: unknown = text
    if (fixed && cfg.contentType === 'application/json') example = JSON.parse(text!)
    const schema = cfg.contentType === 'application/json' ? {} : { type: 'string' }
    const content = text === null ? {} : { [cfg.contentType.split(';')[0]!]: { schema, example } }
    d.answer(
      String(cfg.status),
      fixed || text === null ? 'answered by the gateway' : `answered by the gateway (\`${text}\`, templates filled in)`,
      content,
    )
  },
  login(_cfg, d) {
    d.body(
      'The credentials, POSTed as they came to the session verifier.',
      { 'application/json': { schema: { type: 'object' } }, 'application/x-www-form-urlencoded': { schema: { type: 'object' } } },
      true,
    )
    d.answer('200', 'logged in: a new access and refresh token', TOKENS, NO_STORE)
    d.error('unauthenticated', 'the verifier did not accept the credentials')
    d.error('bad_gateway', 'the verifier cannot be reached or its answer is not user info')
    d.error('upstream_timeout', 'the verifier does not answer in time')
    d.error('store_unavailable', 'the store does not answer')
  },
  'refresh token'(_cfg, d) {
    d.body(
      'The refresh token.',
      { 'application/json': { schema: { type: 'object', required: ['refresh_token'], properties: { refresh_token: { type: 'string' } } } } },
      true,
    )
    d.answer('200', 'a new access and refresh token (the old refresh token is used up)', TOKENS, NO_STORE)
    d.error('bad_request', 'the body is not {"refresh_token": "…"}')
    d.error('unauthenticated', 'the refresh token is unknown, expired, revoked or used before')
    d.error('store_unavailable', 'the store does not answer')
  },
  logout(_cfg, d) {
    d.require([[d.schemes.add('session', { type: 'http', scheme: 'bearer', description: 'An access token issued by the login route (opaque).' })]])
    d.answer('204', 'logged out: the access token and its refresh token are revoked', {}, NO_STORE)
    d.error('unauthenticated', 'no valid access token', { 'WWW-Authenticate': ref('headers', 'WWW-Authenticate') })
    d.error('store_unavailable', 'the store does not answer')
  },
  'token alive'(_cfg, d) {
    d.require([[d.schemes.add('session', { type: 'http', scheme: 'bearer', description: 'An access token issued by the login route (opaque).' })]])
    const alive = {
      type: 'object',
      required: ['active', 'expires_in'],
      properties: { active: { const: true }, expires_in: { type: 'integer', description: 'seconds' } },
    }
    d.answer('200', 'the access token is valid', { 'application/json': { schema: alive } })
    d.error('unauthenticated', 'no valid access token', { 'WWW-Authenticate': ref('headers', 'WWW-Authenticate') })
    d.error('store_unavailable', 'the store does not answer')
  },
}

// Directives that change nothing a client can see in the document (the upstream request, logs).
export const QUIET: readonly string[] = [
  'strip prefix',
  'set header',
  'remove header',
  'set query',
  'remove query',
  'forward user',
  'remove response header',
  'log to',
  'trace',
  'script log',
]
