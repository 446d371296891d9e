// The admin API's app calls on the real gateway (embedded memory store): listing without
// secrets, PUT and DELETE with their token rules, exact names, validation that stores
// nothing, body limits, a store app honoured and revoked by `require key`, and --workers.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { generateKeyPairSync } from 'node:crypto'
import { ADMIN_TOKEN, policyDir, removeDir, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'
import { expectProblem, expectRawProblem, raw, type Problem } from '../helpers/http.ts'

const FILE_KEY = 'file-key-3f9a0c1d7e2b'
const SECRETS = {
  key: 'store-key-8d2e6b1a4c0f',
  next: 'store-key-next-71c5a9e3',
  other: 'store-key-other-5e0d2c8b',
  hmac: 'store-hmac-secret-c3a1f7e9d5',
  leak: 'sk_live_leak_9b7d3f1e',
}
const sha256 = (s: string) => new Bun.CryptoHasher('sha256').update(s).digest('hex')
const NEVER_SHOWN = [FILE_KEY, ...Object.values(SECRETS)].flatMap((s) => [s, sha256(s)])

let upstream: Upstream
let gw: RunningGateway
let dir: string
const answers: string[] = [] // every admin answer body, checked for secrets at the end

beforeAll(async () => {
  upstream = startUpstream()
  dir = policyDir({
    'main.policy': `
tier gold 100/min
tier silver 10/min
app file_app {
  key "ak_file"
  api-key env FILE_KEY
  group files
  tier gold
  meta code "F-1"
}
upstream echo { target ${upstream.url} }
match GET /k {
  require key
  set header X-App = app.name
  set header X-Code = app.meta.code
  proxy echo
}
`,
  })
  gw = await startGateway(dir, ['--no-watch'], { FILE_KEY })
})

afterAll(async () => {
  await gw?.stop()
  upstream?.stop()
  removeDir(dir)
})

const bearer = { authorization: `Bearer ${ADMIN_TOKEN}` }

async function call(path: string, init: RequestInit = {}): Promise<Response> {
  const res = await gw.admin(path, init)
  const text = await res.text()
  answers.push(text)
  return new Response(res.status === 204 ? null : text, { status: res.status, headers: res.headers })
}

const put = (name: string, body: unknown, headers: Record<string, string> = bearer) =>
  call(`/apps/${name}`, {
    method: 'PUT',
    headers: { ...headers, 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
const del = (name: string, headers: Record<string, string> = bearer) => call(`/apps/${name}`, { method: 'DELETE', headers })

// What the upstream saw for a request with this API key, or the gateway's refusal.
async function withKey(key: string): Promise<Response> {
  return gw.fetch('/k', { headers: { 'x-api-key': key } })
}

describe('reading', () => {
  test('GET /apps lists the file apps, without secrets, and says which store it uses', async () => {
    const res = await call('/apps')
    expect(res.status).toBe(200)
    const body = (await res.json()) as { apps: Record<string, unknown>[]; store: unknown }
    expect(body.store).toEqual({ kind: 'memory', live: true })
    const file = body.apps.find((a) => a.name === 'file_app')!
    expect(file).toMatchObject({ source: 'file', key: 'ak_file', tier: 'gold', group: 'files', meta: { code: 'F-1' } })
    expect(file['api-keys']).toEqual([{ from: null, until: null, valid: true }])
  })

  test('GET /apps/NAME: the app; 404 for none; names are exact (no case folding)', async () => {
    const res = await call('/apps/file_app')
    expect(res.status).toBe(200)
    expect(((await res.json()) as { name: string }).name).toBe('file_app')
    await expectProblem(await call('/apps/nobody'), 404, 'no_route')
    await expectProblem(await call('/apps/File_App'), 404, 'no_route')
  })
})

describe('writing', () => {
  test('PUT and DELETE need the admin token: 401 without, 403 for a wrong one; nothing changes', async () => {
    await expectProblem(await put('tokenless', { 'api-key': SECRETS.other }, {}), 401, 'unauthenticated')
    await expectProblem(await put('tokenless', { 'api-key': SECRETS.other }, { authorization: 'Bearer wrong-token-0123456789' }), 403, 'forbidden')
    await expectProblem(await del('file_app', {}), 401, 'unauthenticated')
    await expectProblem(await call('/apps/tokenless'), 404, 'no_route')
    expect((await withKey(SECRETS.other)).status).toBe(401)
  })

  test('PUT creates (201, Location) then replaces (200); `require key` honours the store app at once', async () => {
    const created = await put('partner_s', {
      key: 'ak_partner_s',
      'api-key': SECRETS.key,
      secret: SECRETS.hmac,
      tier: 'silver',
      meta: { code: 'S-1' },
    })
    expect(created.status).toBe(201)
    expect(created.headers.get('location')).toBe('/apps/partner_s')
    expect(await created.json()).toMatchObject({ name: 'partner_s', source: 'store', key: 'ak_partner_s', tier: 'silver', meta: { code: 'S-1' } })
    const ok = await withKey(SECRETS.key)
    expect(ok.status).toBe(200)
    const seen = (await ok.json()) as { headers: Record<string, string> }
    expect(seen.headers['x-app']).toBe('partner_s')
    expect(seen.headers['x-code']).toBe('S-1')

    // Replacing rotates the key: the old one is refused, the new one accepted, meta updated.
    const replaced = await put('partner_s', { key: 'ak_partner_s', 'api-key': SECRETS.next, meta: { code: 'S-2' } })
    expect(replaced.status).toBe(200)
    expect(replaced.headers.get('location')).toBeNull()
    await expectProblem(await withKey(SECRETS.key), 401, 'unauthenticated')
    const next = await withKey(SECRETS.next)
    expect(next.status).toBe(200)
    expect(((await next.json()) as { headers: Record<string, string> }).headers['x-code']).toBe('S-2')

    const listed = (await (await call('/apps')).json()) as { apps: { name: string; source: string }[] }
    expect(listed.apps.map((a) => `${a.source}:${a.name}`).sort()).toEqual(['file:file_app', 'store:partner_s'])
  })

  test('an API key window and a PEM public key are kept; the answer shows neither value', async () => {
    const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string
    const res = await put('windowed', {
      'api-key': [{ value: SECRETS.other, from: '2020-01-01', until: '2099-01-01T00:00:00Z' }],
      'public-key': pem,
      'cert-sha256': 'AB'.repeat(32).match(/../g)!.join(':'),
      'allow-ip': '127.0.0.1',
    })
    expect(res.status).toBe(201)
    const body = (await res.json()) as Record<string, unknown>
    expect(body['api-keys']).toEqual([{ from: '2020-01-01T00:00:00.000Z', until: '2099-01-01T00:00:00.000Z', valid: true }])
    expect(body['public-key']).toBe('ec')
    expect(body['cert-sha256']).toEqual(['ab'.repeat(32)])
    expect(body['allow-ip']).toEqual(['127.0.0.1'])
    expect((await withKey(SECRETS.other)).status).toBe(200)
    expect((await del('windowed')).status).toBe(204)
  })

  test('allow-ip of a store app applies: a caller from elsewhere gets 403', async () => {
    expect((await put('fenced', { 'api-key': SECRETS.other, 'allow-ip': ['10.0.0.0/8'] })).status).toBe(201)
    await expectProblem(await withKey(SECRETS.other), 403, 'forbidden')
    expect((await put('fenced', { 'api-key': SECRETS.other, 'allow-ip': ['10.0.0.0/8', '127.0.0.0/8'] })).status).toBe(200)
    expect((await withKey(SECRETS.other)).status).toBe(200)
    expect((await del('fenced')).status).toBe(204)
  })

  test('DELETE revokes: 204, then the key is refused and the name is gone; again 404', async () => {
    expect((await put('short_lived', { 'api-key': SECRETS.other })).status).toBe(201)
    expect((await withKey(SECRETS.other)).status).toBe(200)
    const res = await del('short_lived')
    expect(res.status).toBe(204)
    expect(await res.text()).toBe('')
    await expectProblem(await withKey(SECRETS.other), 401, 'unauthenticated')
    await expectProblem(await call('/apps/short_lived'), 404, 'no_route')
    await expectProblem(await del('short_lived'), 404, 'no_route')
  })

  test('a file app can be neither deleted nor shadowed through the admin API (400, it keeps working)', async () => {
    const deleted = await expectProblem(await del('file_app'), 400, 'bad_request')
    expect(deleted.detail).toContain('file app')
    const shadowed = await expectProblem(await put('file_app', { 'api-key': SECRETS.other }), 400, 'bad_request')
    expect(shadowed.detail).toContain('name:')
    const ok = await withKey(FILE_KEY)
    expect(ok.status).toBe(200)
    expect(((await ok.json()) as { headers: Record<string, string> }).headers['x-app']).toBe('file_app')
    await expectProblem(await withKey(SECRETS.other), 401, 'unauthenticated')
  })
})

describe('validation: a 400 naming the field, and nothing stored', () => {
  beforeAll(async () => {
    expect((await put('taken', { key: 'ak_taken', 'api-key': SECRETS.key, 'jwt-subject': 'taken-client' })).status).toBeOneOf([200, 201])
  })
  afterAll(async () => void (await del('taken')))

  const pem = '-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n'
  test.each([
    ['an unknown field', { 'api-key': SECRETS.other, colour: 'red' }, 'colour: unknown field'],
    ['a bad CIDR', { 'api-key': SECRETS.other, 'allow-ip': ['10.0.0.0/8', '10.0.0.300'] }, "allow-ip[1]: '10.0.0.300'"],
    ['an allow-ip that is not a string', { 'allow-ip': ['10.0.0.0/8', 7] }, 'allow-ip[1]'],
    ['a tier the policies do not declare', { tier: 'platinum' }, "tier: no tier 'platinum' (the policies declare gold, silver)"],
    ["a file app's key id", { key: 'ak_file' }, "key: 'ak_file' is the key of the file app 'file_app'"],
    ["another store app's key id", { key: 'ak_taken' }, "key: 'ak_taken' is the key of the store app 'taken'"],
    ["a file app's API key", { 'api-key': ['fresh-key-0001', FILE_KEY] }, "api-key[1]: this API key is the file app 'file_app'"],
    ["another store app's API key", { 'api-key': SECRETS.key }, "api-key[0]: this API key is the store app 'taken'"],
    ["another app's JWT subject", { 'jwt-subject': 'taken-client' }, 'jwt-subject:'],
    ['a PEM that is not a key', { 'public-key': pem }, 'public-key:'],
    ['not PEM at all', { 'public-key': 'ssh-ed25519 AAAA' }, 'public-key:'],
    ['a meta value that is not a string', { meta: { code: 1 } }, 'meta.code:'],
    ['a bad fingerprint', { 'cert-sha256': 'zz' }, 'cert-sha256:'],
    ['a window that ends before it starts', { 'api-key': { value: SECRETS.other, from: '2030-01-01', until: '2029-01-01' } }, 'api-key'],
    ['an empty key id', { key: '' }, 'key:'],
    ['an array body', [], 'the body:'],
  ])('%s', async (_what, body, field) => {
    const problem = await expectProblem(await put('rejected', body), 400, 'bad_request')
    expect(problem.detail).toContain(field)
    await expectProblem(await call('/apps/rejected'), 404, 'no_route')
    expect((await withKey(SECRETS.other)).status).toBe(401)
  })

  test('every problem is named at once', async () => {
    const problem = await expectProblem(await put('rejected', { tier: 'platinum', 'allow-ip': 'nowhere', key: 'ak_file' }), 400, 'bad_request')
    for (const field of ['tier:', 'allow-ip[0]:', 'key:']) expect(problem.detail).toContain(field)
  })

  test('malformed JSON is a 400 that does not quote the body', async () => {
    const problem = await expectProblem(await put('rejected', `{"api-key": ${SECRETS.leak}}`), 400, 'bad_request')
    expect(problem.detail).toContain('not valid JSON')
    expect(problem.detail).not.toContain(SECRETS.leak)
    await expectProblem(await put('rejected', ''), 400, 'bad_request')
    await expectProblem(await call('/apps/rejected'), 404, 'no_route')
  })

  test('a body of 64 KiB is taken; one byte more is 413, by Content-Length or while streaming', async () => {
    const padded = (size: number) => {
      const shell = JSON.stringify({ 'api-key': 'padded-key-0001', meta: { pad: '' } })
      return JSON.stringify({ 'api-key': 'padded-key-0001', meta: { pad: 'x'.repeat(size - shell.length) } })
    }
    expect(padded(65_536).length).toBe(65_536)
    expect((await put('padded', padded(65_536))).status).toBe(201)
    expect((await del('padded')).status).toBe(204)
    await expectProblem(await put('padded', padded(65_537)), 413, 'payload_too_large')
    // Chunked: no Content-Length, the limit applies while reading.
    const bytes = new TextEncoder().encode(padded(200_000))
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < bytes.length; i += 16_384) c.enqueue(bytes.slice(i, i + 16_384))
        c.close()
      },
    })
    await expectProblem(await call('/apps/padded', { method: 'PUT', headers: bearer, body: stream }), 413, 'payload_too_large')
    await expectProblem(await call('/apps/padded'), 404, 'no_route')
  })
})

describe('the NAME in the path is exact', () => {
  const auth = [`Authorization: Bearer ${ADMIN_TOKEN}`]
  const body = JSON.stringify({ 'api-key': SECRETS.other })
  const json = [...auth, 'Content-Type: application/json']

  test('a % in the name is a 400, never decoded (%61bc is not abc)', async () => {
    const p = expectRawProblem(await raw(gw.adminUrl, 'PUT', '/apps/%61bc', json, body), 400, 'bad_request')
    expect(p.detail).toContain('percent')
    expectRawProblem(await raw(gw.adminUrl, 'GET', '/apps/file%5Fapp'), 400, 'bad_request')
    expectRawProblem(await raw(gw.adminUrl, 'DELETE', '/apps/a%2Fb', auth), 400, 'bad_request')
    await expectProblem(await call('/apps/abc'), 404, 'no_route')
  })

  test('more path segments, or none, are no endpoint (404)', async () => {
    expectRawProblem(await raw(gw.adminUrl, 'PUT', '/apps/abc/def', json, body), 404, 'no_route')
    expectRawProblem(await raw(gw.adminUrl, 'GET', '/apps/file_app/'), 404, 'no_route')
    expectRawProblem(await raw(gw.adminUrl, 'GET', '/apps/'), 404, 'no_route')
    expectRawProblem(await raw(gw.adminUrl, 'DELETE', '/apps/file_app/x', auth), 404, 'no_route')
  })

  test('characters outside the name alphabet are a 400', async () => {
    for (const name of ['a.b', '9lives', 'a~b', `a${'b'.repeat(64)}`]) {
      const p = expectRawProblem(await raw(gw.adminUrl, 'PUT', `/apps/${name}`, json, body), 400, 'bad_request')
      expect(p.detail).toContain('not an app name')
    }
  })

  test('case is kept: Mixed_Case and mixed_case are two names', async () => {
    expect((await put('Mixed_Case', { 'api-key': SECRETS.other })).status).toBe(201)
    await expectProblem(await call('/apps/mixed_case'), 404, 'no_route')
    await expectProblem(await del('mixed_case'), 404, 'no_route')
    expect((await del('Mixed_Case')).status).toBe(204)
  })

  test('other methods are a 405 with Allow', async () => {
    const a = await call('/apps', { method: 'PUT', headers: bearer, body: '{}' })
    await expectProblem(a, 405, 'method_not_allowed')
    expect(a.headers.get('allow')).toBe('GET')
    const b = await call('/apps/x', { method: 'POST', headers: bearer, body: '{}' })
    await expectProblem(b, 405, 'method_not_allowed')
    expect(b.headers.get('allow')).toBe('GET, PUT, DELETE')
  })
})

test('the existing admin calls still answer', async () => {
  expect((await call('/healthz')).status).toBe(200)
  expect((await call('/readyz')).status).toBe(200)
  expect((await call('/routes')).status).toBe(200)
})

test('no secret, API key or API key hash in any admin answer or in the output of the gateway', async () => {
  expect(answers.length).toBeGreaterThan(40)
  const seen = [...answers, ...gw.stdout, ...gw.stderr].join('\n')
  for (const s of NEVER_SHOWN) expect(seen).not.toContain(s)
  // The changes were said on stderr, by name.
  expect(gw.stderr.join('\n')).toContain("store app 'partner_s' added")
  expect(gw.stderr.join('\n')).toContain("store app 'short_lived' revoked")
})

describe('--workers without --redis', () => {
  let workers: RunningGateway
  let wdir: string
  beforeAll(async () => {
    const probe = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response() })
    const port = probe.port!
    probe.stop(true)
    wdir = policyDir({ 'main.policy': 'match GET /k { require key; respond 200 text "hello {app.name}" }\n' })
    workers = await startGateway(wdir, ['--workers', '2', '--port', String(port), '--no-watch'])
    // Worker processes start slowly on a loaded machine.
  }, 15_000)
  afterAll(async () => {
    await workers?.stop()
    removeDir(wdir)
  })

  test('store app changes are refused (403): each worker has its own memory store, the admin API would reach none', async () => {
    const res = await workers.admin('/apps/w_app', { method: 'PUT', headers: bearer, body: JSON.stringify({ 'api-key': SECRETS.other }) })
    const p: Problem = await expectProblem(res, 403, 'forbidden')
    expect(p.detail).toContain('--redis')
    await expectProblem(await workers.admin('/apps/w_app', { method: 'DELETE', headers: bearer }), 403, 'forbidden')
    expect((await workers.fetch('/k', { headers: { 'x-api-key': SECRETS.other } })).status).toBe(401)
    expect((await workers.admin('/apps')).status).toBe(200)
  })
})
