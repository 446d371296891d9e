// `gateway openapi DIR`: the OpenAPI 3.1 document of the routes, checked by an independent
// validator (@seriousme/openapi-schema-validator), and the parts the directives decide:
// security from `require`, the gateway's answers, deprecation, typed parameters, hosts.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { Validator } from '@seriousme/openapi-schema-validator'
import { EFFECTS, QUIET } from '../../src/compile/openapi-effects.ts'
import { directives } from '../../src/directives/index.ts'
import { BUN, ROOT, policyDir, removeDir } from '../helpers/gateway.ts'

type Json = Record<string, any>

// The command as a user runs it (the lead wires it into `gateway openapi`; its entry is this file).
async function openapi(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn([BUN, join(ROOT, 'src/cli/openapi.ts'), ...args], { cwd: ROOT, stdout: 'pipe', stderr: 'pipe', stdin: 'ignore' })
  const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000)
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  clearTimeout(timer)
  return { code, stdout, stderr }
}

// Valid against the OpenAPI 3.1 schema, every $ref resolves, and what the schema cannot say:
// unique operationIds, and each path template's names are exactly its path parameters.
async function expectValid(doc: Json): Promise<void> {
  const v = new Validator()
  const res = await v.validate(structuredClone(doc))
  expect(res.errors ?? []).toEqual([])
  expect(res.valid).toBe(true)
  expect(v.version).toBe('3.1')
  expect(() => v.resolveRefs()).not.toThrow()
  const ids: string[] = []
  for (const [path, item] of Object.entries(doc.paths as Json)) {
    const names = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).sort()
    for (const op of Object.values(item as Json)) {
      ids.push(op.operationId)
      expect((op.parameters ?? []).map((p: Json) => p.name).sort()).toEqual(names)
    }
  }
  expect(new Set(ids).size).toBe(ids.length)
}

async function documentOf(dir: string, ...flags: string[]): Promise<Json> {
  const r = await openapi([dir, ...flags])
  expect(r.stderr).toBe('')
  expect(r.code).toBe(0)
  const doc = JSON.parse(r.stdout)
  await expectValid(doc)
  return doc
}

const responseCodes = (op: Json) => Object.keys(op.responses)
const gatewayCodes = (op: Json, status: string) => (op.responses[status]?.description as string).match(/`[a-z_]+`/g)?.map((c) => c.slice(1, -1))

test('the validator refuses a broken document (the checks below can fail)', async () => {
  const v = new Validator()
  const res = await v.validate({ openapi: '3.1.0', paths: { '/a': { get: { responses: { '200': { headers: {} } } } } } })
  expect(res.valid).toBe(false)
})

test('the example policies give a valid document, retired routes left out', async () => {
  const r = await openapi(['policies', '--title', 'Portcullis examples', '--server', 'https://api.example.com', '--api-version', '1.2.3'])
  expect(r.code).toBe(0)
  const doc = JSON.parse(r.stdout)
  await expectValid(doc)
  expect(doc.openapi).toBe('3.1.0')
  expect(doc.info).toMatchObject({ title: 'Portcullis examples', version: '1.2.3' })
  expect(doc.servers).toEqual([{ url: 'https://api.example.com' }])
  expect(Object.keys(doc.paths).length).toBeGreaterThan(40)
  // `match * /api/v0/orders/{rest*} { status retired }` is not an API anyone can call.
  expect(Object.keys(doc.paths).some((p) => p.startsWith('/api/v0/orders'))).toBe(false)
  // `status blocked`: a 503 `blocked` and what the defaults refuse before it, nothing of the upstream.
  const exported = doc.paths['/api/v1/orders/export'].get
  expect(responseCodes(exported)).toEqual(['403', '413', '503'])
  expect(gatewayCodes(exported, '503')).toEqual(['blocked'])
  // Two routes for one operation (GET /api/v1/users/{uid:uuid} and /api/v1/users/{name}): a note.
  expect(r.stderr).toContain('note: policies/users.policy:12: GET /api/v1/users/{name} shares the operation')
})

describe('a policy directory of every kind of route', () => {
  let dir: string
  let doc: Json
  beforeAll(async () => {
    dir = policyDir({
      'upstreams.policy': `upstream up { target http://127.0.0.1:9 }
session { verify via up /verify }
`,
      'api.policy': `defaults { limit body 1mb }

match POST /orders {
  require hmac or key
  require jwt issuer "https://auth.example.com" jwks https://auth.example.com/.well-known/jwks.json
  require scope orders:write
  proxy up
}

match GET /partners/{id:int} {
  require key header X-Partner-Key
  throttle 20/min per app
  proxy up
}

match GET /reports/{ref:uuid}/{code:/[A-Z]{3}/} {
  quota 1000/day per ip
  limit body 10kb
  proxy up
}

match GET /cert { require mtls; proxy up }
match GET /me { require session; proxy up }
match POST /login { login }

match * /legacy/{rest*} {
  status deprecated since 2025-01-01 sunset 2027-06-30
  proxy up
}
match * /gone { status retired }
match GET /off { status blocked }
match GET /healthz { respond 200 json "{\\"ok\\":true}" }
match GET /tenant host api.example.com { proxy up }
`,
    })
    const r = await openapi([dir, '--server', 'http://gateway.internal:8080/base'])
    expect(r.stderr).toBe('')
    doc = JSON.parse(r.stdout)
  })
  afterAll(() => removeDir(dir))

  test('is valid OpenAPI 3.1', async () => {
    await expectValid(doc)
  })

  test('require lines: each line is needed, `or` alternatives are separate requirements, scopes on the JWT', () => {
    const op = doc.paths['/orders'].post
    expect(op.security).toEqual([
      { httpSignature: [], jwt: ['orders:write'] },
      { apiKey: [], jwt: ['orders:write'] },
    ])
    const schemes = doc.components.securitySchemes
    expect(schemes.jwt).toMatchObject({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' })
    expect(schemes.jwt.description).toContain('https://auth.example.com')
    expect(schemes.apiKey).toMatchObject({ type: 'apiKey', in: 'header', name: 'X-Api-Key' })
    expect(schemes.httpSignature).toMatchObject({ type: 'apiKey', in: 'header', name: 'Signature' })
    expect(schemes.httpSignature.description).toContain('RFC 9421')
    expect(doc.paths['/partners/{id}'].get.security).toEqual([{ 'apiKey-header-X-Partner-Key': [] }])
    expect(schemes['apiKey-header-X-Partner-Key']).toMatchObject({ type: 'apiKey', in: 'header', name: 'X-Partner-Key' })
    expect(doc.paths['/cert'].get.security).toEqual([{ mutualTLS: [] }])
    expect(schemes.mutualTLS.type).toBe('mutualTLS')
    expect(doc.paths['/me'].get.security).toEqual([{ session: [] }, { sessionQuery: [] }])
    expect(schemes.sessionQuery).toMatchObject({ type: 'apiKey', in: 'query', name: 'access_token' })
    // A route without `require` has no security requirement.
    expect(doc.paths['/healthz'].get.security).toBeUndefined()
  })

  test('401, 403 and 503 where credentials are checked, problem+json with Gateway-Error', () => {
    const op = doc.paths['/orders'].post
    expect(responseCodes(op)).toEqual(['200', '401', '403', '413', '502', '503', '504', 'default'])
    const r401 = op.responses['401']
    expect(r401.content['application/problem+json'].schema).toEqual({ $ref: '#/components/schemas/Problem' })
    expect(r401.headers['Gateway-Error']).toEqual({ $ref: '#/components/headers/Gateway-Error' })
    expect(r401.headers['WWW-Authenticate']).toBeDefined()
    expect(r401.description).toContain('no valid hmac or key credentials')
    expect(gatewayCodes(op, '403')).toEqual(['forbidden', 'forbidden'])
    expect(op.responses['403'].description).toContain('does not grant the scope orders:write')
    expect(gatewayCodes(op, '503')).toEqual(['store_unavailable', 'upstream_unavailable'])
    expect(doc.components.schemas.Problem.required).toEqual(['type', 'title', 'status', 'detail', 'instance'])
    // No require, no throttle: no 401 and no 429.
    expect(responseCodes(doc.paths['/healthz'].get)).toEqual(['200', '413'])
  })

  test('throttles: 429 with Retry-After and RateLimit headers, which every answer carries too', () => {
    const op = doc.paths['/partners/{id}'].get
    expect(responseCodes(op)).toContain('429')
    const r429 = op.responses['429']
    expect(gatewayCodes(op, '429')).toEqual(['rate_limited'])
    expect(r429.description).toContain('throttle 20/min per app')
    for (const h of ['Retry-After', 'RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset', 'RateLimit-Policy', 'RateLimit'])
      expect(r429.headers[h]).toEqual({ $ref: `#/components/headers/${h}` })
    expect(op.responses['200'].headers['RateLimit-Remaining']).toBeDefined()
    // Refused before the limits are decided: the 401 carries them as the counters stand.
    expect(op.responses['401'].headers['RateLimit-Remaining']).toEqual({ $ref: '#/components/headers/RateLimit-Remaining' })
    // A throttle admits when the store is down: no store_unavailable of its own.
    expect(gatewayCodes(op, '503')).toEqual(['store_unavailable', 'upstream_unavailable'])
  })

  test('quotas fail closed (503 store_unavailable); the tightest `limit body` is the 413', () => {
    const op = doc.paths['/reports/{ref}/{code}'].get
    expect(gatewayCodes(op, '429')).toEqual(['quota_exceeded'])
    expect(gatewayCodes(op, '503')).toEqual(['store_unavailable', 'upstream_unavailable'])
    expect(op.responses['413'].description).toBe('Payload too large (`payload_too_large`): the body is larger than 10 KiB')
  })

  test('typed and rest parameters map to schemas', () => {
    const params = (path: string, method = 'get') => doc.paths[path][method].parameters
    expect(params('/partners/{id}')).toEqual([
      { name: 'id', in: 'path', required: true, description: 'Digits only.', schema: { type: 'integer', minimum: 0 } },
    ])
    const [ref, code] = params('/reports/{ref}/{code}')
    expect(ref.schema).toEqual({ type: 'string', format: 'uuid' })
    expect(code.schema).toEqual({ type: 'string', pattern: '^(?:[A-Z]{3})$' })
    const [rest] = params('/legacy/{rest}')
    expect(rest.description).toContain('any number of segments')
  })

  test('`status deprecated`: deprecated, with its Deprecation and Sunset values; `*` lists the common methods', () => {
    const item = doc.paths['/legacy/{rest}']
    expect(Object.keys(item)).toEqual(['get', 'post', 'put', 'patch', 'delete'])
    const op = item.get
    expect(op.deprecated).toBe(true)
    const headers = doc.components.headers
    const dep = op.responses['200'].headers.Deprecation.$ref.split('/').at(-1)
    const sunset = op.responses['200'].headers.Sunset.$ref.split('/').at(-1)
    expect(headers[dep].schema.const).toBe(`@${Date.UTC(2025, 0, 1) / 1000}`)
    expect(headers[sunset].schema.const).toBe('Wed, 30 Jun 2027 00:00:00 GMT')
    expect(doc.paths['/orders'].post.deprecated).toBeUndefined()
    expect(item.post.requestBody.content).toEqual({ '*/*': { schema: {} } })
  })

  test('retired routes are left out; blocked ones answer 503 blocked; respond routes show their answer', () => {
    expect(doc.paths['/gone']).toBeUndefined()
    expect(gatewayCodes(doc.paths['/off'].get, '503')).toEqual(['blocked'])
    expect(doc.paths['/off'].get.responses['200']).toBeUndefined()
    const health = doc.paths['/healthz'].get.responses['200']
    expect(health.content['application/json'].example).toEqual({ ok: true })
  })

  test('session login: the token answer and the verifier failures', () => {
    const op = doc.paths['/login'].post
    expect(op.responses['200'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/SessionTokens' })
    expect(gatewayCodes(op, '401')).toEqual(['unauthenticated'])
    expect(op.requestBody.required).toBe(true)
  })

  test('operation ids, route ids and source locations; host routes get their server', () => {
    const op = doc.paths['/orders'].post
    expect(op.operationId).toBe('postOrders')
    expect(op['x-portcullis-route']).toBe('POST /orders')
    expect(op['x-portcullis-location']).toBe(`${join(dir, 'api.policy')}:3`)
    const tenant = doc.paths['/tenant'].get
    expect(tenant['x-portcullis-host']).toBe('api.example.com')
    expect(tenant.servers).toEqual([{ url: 'http://api.example.com:8080/base' }])
    expect(doc.servers).toEqual([{ url: 'http://gateway.internal:8080/base' }])
  })
})

test('one operation served by two routes (two hosts): the first documented, the other named', async () => {
  const dir = policyDir({
    'a.policy': `upstream up { target http://127.0.0.1:9 }
match GET /x host a.example.com { proxy up }
match GET /x host b.example.com { respond 204 }
`,
  })
  try {
    const r = await openapi([dir])
    expect(r.code).toBe(0)
    const doc = JSON.parse(r.stdout)
    await expectValid(doc)
    const op = doc.paths['/x'].get
    expect(op['x-portcullis-host']).toBe('a.example.com')
    expect(op['x-portcullis-also']).toEqual([{ route: 'GET /x host b.example.com', location: `${join(dir, 'a.policy')}:3`, host: 'b.example.com' }])
    expect(r.stderr).toBe(
      `note: ${join(dir, 'a.policy')}:3: GET /x host b.example.com shares the operation GET /x with GET /x host a.example.com (${join(dir, 'a.policy')}:2): only that one is documented\n`,
    )
  } finally {
    removeDir(dir)
  }
})

test('`when` blocks on the method are decided per operation', async () => {
  const dir = policyDir({
    'a.policy': `upstream up { target http://127.0.0.1:9 }
match GET,DELETE /items/{id} {
  require key
  when request.method = "DELETE" { allow ip 10.0.0.0/8 }
  when request.header.X-Beta present { respond 200 text "beta" }
  proxy up
}
`,
  })
  try {
    const doc = await documentOf(dir)
    const item = doc.paths['/items/{id}']
    const refusals = (op: Json) => op.responses['403'].description as string
    expect(refusals(item.get)).not.toContain('10.0.0.0/8')
    expect(refusals(item.delete)).toContain('refused by `allow ip 10.0.0.0/8`')
    expect(refusals(item.delete)).not.toContain('(when')
    // Another condition: maybe; the answer is documented with its condition.
    expect(item.get.responses['200'].description).toContain('(when request.header.X-Beta present)')
    expect(item.get.responses['200'].content['text/plain'].example).toBe('beta')
  } finally {
    removeDir(dir)
  }
})

describe('misuse and broken policies', () => {
  test('policy errors are the diagnostics of `gateway check`, exit 1, nothing on stdout', async () => {
    const dir = policyDir({ 'a.policy': 'match GET /a {\n  proxy nowhere\n}\n' })
    try {
      const r = await openapi([dir])
      expect(r.code).toBe(1)
      expect(r.stdout).toBe('')
      expect(r.stderr).toContain(`${join(dir, 'a.policy')}:2:9: error: unknown upstream 'nowhere'`)
    } finally {
      removeDir(dir)
    }
  })

  test.each([
    [[], 'gateway openapi: which policy directory?'],
    [['policies', 'extra'], "gateway openapi: unexpected argument 'extra'"],
    [['policies', '--server', 'ftp://x'], 'gateway openapi: --server must be an http(s) URL'],
    [['policies', '--title', ' '], 'gateway openapi: --title must not be empty'],
    [['policies', '--yaml'], "gateway openapi: Unknown option '--yaml'"],
    [['/no/such/dir'], '/no/such/dir'],
  ])('%p: one line on stderr, exit 2', async (args, message) => {
    const r = await openapi(args)
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1)
    expect(r.stderr).toContain(message)
  })
})

test('every directive has a decision: an effect on the document, or none (QUIET)', () => {
  const undecided = directives.map((d) => d.name).filter((n) => !(n in EFFECTS) && !QUIET.includes(n))
  expect(undecided).toEqual([])
  expect(Object.keys(EFFECTS).filter((n) => !directives.some((d) => d.name === n))).toEqual([])
})
