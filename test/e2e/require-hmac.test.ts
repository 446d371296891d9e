// `require hmac` through the real gateway: RFC 9421 signatures made here, by the
// `http-message-signatures` package and by the partner recipe in docs/ (TypeScript and
// curl + openssl); every refusal is a gateway error the upstream never sees. Nonces are shared
// by two gateways on the real Redis; a Redis that dies is a 503 within a second.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createHash, createHmac, generateKeyPairSync, randomUUID } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { httpbis, createSigner } from 'http-message-signatures'
import { signRequest } from '../../docs/sign-request.ts'
import {
  ADMIN_TOKEN,
  policyDir,
  removeDir,
  ROOT,
  runCli,
  startGateway,
  startRecordingUpstream,
  type RunningGateway,
  type Upstream,
  freePort,
} from '../helpers/gateway.ts'
import { expectProblem, type Echo } from '../helpers/http.ts'

const SECRET = 'hmac-e2e-secret-0123456789abcdef'
const SECRETS = { HMAC_SECRET: SECRET, HMAC_NEXT: 'hmac-e2e-next-secret-0123456789' }
const ed = generateKeyPairSync('ed25519')

let upstream: Upstream
let gw: RunningGateway
let dir: string
const hits: Echo[] = []

const routes = () => `
upstream echo { target ${upstream.url} }

app partner_s {
  key "ak_s"
  secret env HMAC_SECRET
  meta code "PS-1"
}
app partner_rot {
  key "ak_rot"
  secret env HMAC_SECRET
  secret env HMAC_NEXT from 2099-01-01
}
app partner_ed {
  key "ak_ed"
  public-key file "ed.pem"
}

match * /api/{rest*} {
  require hmac
  rewrite path /internal/{rest*}
  proxy echo
}
match GET /covered {
  require hmac window 60s covers "x-date" "@authority"
  proxy echo
}
match POST /limited {
  limit body 64b
  require hmac
  proxy echo
}
`

beforeAll(async () => {
  upstream = startRecordingUpstream(hits)
  dir = policyDir({ 'routes.policy': routes(), 'ed.pem': ed.publicKey.export({ type: 'spki', format: 'pem' }) as string })
  gw = await startGateway(dir, [], SECRETS)
})

afterAll(async () => {
  await gw?.stop()
  upstream?.stop()
  removeDir(dir)
})

// A signer written for these tests, independent of the gateway: the signature base by hand.
interface Sign {
  method?: string
  url: string // full URL, as sent
  body?: string
  secret?: string
  keyid?: string
  created?: number
  nonce?: string
  params?: string // extra parameters, e.g. `;alg="ed25519"`
  lines?: [string, string][] // the covered components (default: method, target URI, digest)
  headers?: Record<string, string>
}
function sign(o: Sign): Record<string, string> {
  const method = o.method ?? 'GET'
  const headers: Record<string, string> = { ...o.headers }
  const lines: [string, string][] = o.lines ?? [
    ['"@method"', method],
    ['"@target-uri"', o.url],
  ]
  if (o.body !== undefined) {
    headers['content-digest'] = `sha-256=:${createHash('sha256').update(o.body).digest('base64')}:`
    if (!o.lines) lines.push(['"content-digest"', headers['content-digest']])
  }
  const list = `(${lines.map(([id]) => id).join(' ')});created=${o.created ?? Math.floor(Date.now() / 1000)};nonce="${o.nonce ?? randomUUID()}";keyid="${o.keyid ?? 'ak_s'}"${o.params ?? ''}`
  const base = `${lines.map(([id, v]) => `${id}: ${v}\n`).join('')}"@signature-params": ${list}`
  headers['signature-input'] = `sig1=${list}`
  headers['signature'] = `sig1=:${createHmac('sha256', o.secret ?? SECRET)
    .update(base)
    .digest('base64')}:`
  return headers
}

const reached = async (f: () => Promise<Response>) => {
  const before = hits.length
  const res = await f()
  return { res, reached: hits.length > before, echo: hits[hits.length - 1] }
}

// A refusal: the status and code, a short detail without secrets or signatures, no upstream call.
async function refused(f: () => Promise<Response>, status = 401, code = 'unauthenticated'): Promise<string> {
  const r = await reached(f)
  const problem = await expectProblem(r.res, status, code)
  expect(r.reached).toBe(false)
  expect(problem.detail).not.toContain(SECRET)
  expect(problem.detail).not.toMatch(/[A-Za-z0-9+/]{40,}/)
  return problem.detail
}

describe('require hmac: accepted requests', () => {
  test('a valid hmac-sha256 request reaches the upstream as the app; a client X-Consumer is dropped', async () => {
    const url = `${gw.url}/api/orders/7?x=1`
    const { res, reached: ok, echo } = await reached(() => fetch(url, { headers: { ...sign({ url }), 'x-consumer': 'admin', x_consumer: 'admin' } }))
    expect(res.status).toBe(200)
    expect(ok).toBe(true)
    expect(echo!.path).toBe('/internal/orders/7')
    expect(echo!.headers['x-consumer']).toBe('partner_s')
    expect(Object.keys(echo!.headers).filter((h) => h.replace(/[_.]/g, '-') === 'x-consumer')).toEqual(['x-consumer'])
    await gw.waitFor('stdout', /"path":"\/api\/orders\/7"/)
    expect(gw.accessLog().find((l) => l.path === '/api/orders/7')?.app).toBe('partner_s')
  })

  test('a POST body with its Content-Digest reaches the upstream byte for byte', async () => {
    const url = `${gw.url}/api/orders`
    const body = JSON.stringify({ sku: 'A-1', qty: 2, note: 'ünïcödé' })
    const { res, echo } = await reached(() => fetch(url, { method: 'POST', headers: sign({ method: 'POST', url, body }), body }))
    expect(res.status).toBe(200)
    expect(echo!.body).toBe(body)
  })

  test('the route covers list: x-date and @authority must be signed', async () => {
    const url = `${gw.url}/covered`
    const authority = new URL(gw.url).host
    const lines: [string, string][] = [
      ['"@method"', 'GET'],
      ['"@target-uri"', url],
      ['"x-date"', 'today'],
      ['"@authority"', authority],
    ]
    expect((await fetch(url, { headers: sign({ url, lines, headers: { 'x-date': 'today' } }) })).status).toBe(200)
    expect(await refused(() => fetch(url, { headers: sign({ url, lines: lines.slice(0, 3), headers: { 'x-date': 'today' } }) }))).toContain(
      '"@authority"',
    )
    expect(await refused(() => fetch(url, { headers: { ...sign({ url, lines, headers: { 'x-date': 'today' } }), 'x-date': 'later' } }))).toBe(
      'the signature does not verify',
    )
  })
})

describe('require hmac: refusals (401 unauthenticated, upstream not reached)', () => {
  const url = () => `${gw.url}/api/orders/7?x=1`

  test('no signature: 401 with WWW-Authenticate: Signature', async () => {
    const r = await reached(() => fetch(url()))
    await expectProblem(r.res, 401, 'unauthenticated')
    expect(r.res.headers.get('www-authenticate')).toBe('Signature')
    expect(r.reached).toBe(false)
  })

  test('malformed, half-present, unknown keyid, wrong secret', async () => {
    const good = sign({ url: url() })
    expect(await refused(() => fetch(url(), { headers: { 'signature-input': good['signature-input']! } }))).toContain('both')
    expect(await refused(() => fetch(url(), { headers: { ...good, 'signature-input': 'sig1=("@method"' } }))).toContain('structured field')
    expect(await refused(() => fetch(url(), { headers: sign({ url: url(), keyid: 'ak_nobody' }) }))).toContain('keyid is not known')
    expect(await refused(() => fetch(url(), { headers: sign({ url: url(), secret: 'a-wrong-secret' }) }))).toBe('the signature does not verify')
  })

  test('expired, created in the future, expires in the past', async () => {
    const now = Math.floor(Date.now() / 1000)
    expect(await refused(() => fetch(url(), { headers: sign({ url: url(), created: now - 301 }) }))).toContain('too old')
    expect(await refused(() => fetch(`${gw.url}/covered`, { headers: sign({ url: `${gw.url}/covered`, created: now - 61 }) }))).toContain('too old')
    expect(await refused(() => fetch(url(), { headers: sign({ url: url(), created: now + 120 }) }))).toContain('future')
    expect(await refused(() => fetch(url(), { headers: sign({ url: url(), params: `;expires=${now - 1}` }) }))).toContain('expired')
  })

  test('a replay of the same signed request is refused; a refused request does not use up its nonce', async () => {
    const nonce = randomUUID()
    await refused(() => fetch(url(), { headers: sign({ url: url(), nonce, secret: 'a-wrong-secret' }) }))
    const headers = sign({ url: url(), nonce })
    expect((await fetch(url(), { headers })).status).toBe(200)
    expect(await refused(() => fetch(url(), { headers }))).toContain('replay')
  })

  test('tampered method, path, query, body or covered header', async () => {
    const body = '{"qty":1}'
    const post = (target: string, headers: Record<string, string>, b = body, method = 'POST') =>
      fetch(`${gw.url}${target}`, { method, headers, body: b })
    const signed = () => sign({ method: 'POST', url: `${gw.url}/api/orders?x=1`, body })
    expect(await refused(() => post('/api/orders?x=1', signed(), body, 'PUT'))).toBe('the signature does not verify')
    expect(await refused(() => post('/api/orders/2?x=1', signed()))).toBe('the signature does not verify')
    expect(await refused(() => post('/api/orders?x=2', signed()))).toBe('the signature does not verify')
    expect(await refused(() => post('/api/orders?x=1', signed(), '{"qty":9}'))).toContain('does not match its Content-Digest')
    // A body the signature does not cover the digest of.
    const noDigest = sign({
      method: 'POST',
      url: `${gw.url}/api/orders?x=1`,
      lines: [
        ['"@method"', 'POST'],
        ['"@target-uri"', `${gw.url}/api/orders?x=1`],
      ],
    })
    expect(await refused(() => post('/api/orders?x=1', noDigest))).toContain('"content-digest"')
  })

  test('a signature over the rewritten (upstream) path fails; over the client path it passes', async () => {
    const upstreamUrl = `${gw.url}/internal/orders/7?x=1`
    expect(await refused(() => fetch(url(), { headers: sign({ url: upstreamUrl }) }))).toBe('the signature does not verify')
    const { res, echo } = await reached(() => fetch(url(), { headers: sign({ url: url() }) }))
    expect(res.status).toBe(200)
    expect(echo!.path).toBe('/internal/orders/7')
  })

  test('alg must match the key; rotation: a secret whose window has not opened is refused', async () => {
    expect(await refused(() => fetch(url(), { headers: sign({ url: url(), params: ';alg="ed25519"' }) }))).toContain("does not match the app's key")
    expect((await fetch(url(), { headers: sign({ url: url(), keyid: 'ak_rot', params: ';alg="hmac-sha256"' }) })).status).toBe(200)
    expect(await refused(() => fetch(url(), { headers: sign({ url: url(), keyid: 'ak_rot', secret: SECRETS.HMAC_NEXT }) }))).toBe(
      'the signature does not verify',
    )
  })

  test('a body over `limit body` is a 413 before anything reaches the upstream', async () => {
    const u = `${gw.url}/limited`
    const body = 'x'.repeat(100)
    await refused(() => fetch(u, { method: 'POST', headers: sign({ method: 'POST', url: u, body }), body }), 413, 'payload_too_large')
    const small = 'x'.repeat(10)
    expect((await fetch(u, { method: 'POST', headers: sign({ method: 'POST', url: u, body: small }), body: small })).status).toBe(200)
  })

  test('a store app signs until it is revoked', async () => {
    const put = await gw.admin('/apps/store_signer', {
      method: 'PUT',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ key: 'ak_store', secret: 'store-secret-0123456789' }),
    })
    expect(put.status).toBe(201)
    const { res, echo } = await reached(() => fetch(url(), { headers: sign({ url: url(), keyid: 'ak_store', secret: 'store-secret-0123456789' }) }))
    expect(res.status).toBe(200)
    expect(echo!.headers['x-consumer']).toBe('store_signer')
    expect((await gw.admin('/apps/store_signer', { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).status).toBe(204)
    expect(await refused(() => fetch(url(), { headers: sign({ url: url(), keyid: 'ak_store', secret: 'store-secret-0123456789' }) }))).toContain(
      'not known',
    )
  })
})

describe('independent signers', () => {
  test('http-message-signatures (dhensby): hmac-sha256 and ed25519 accepted, tampered refused', async () => {
    const url = `${gw.url}/api/orders?src=lib`
    const body = '{"from":"library"}'
    const digest = `sha-256=:${createHash('sha256').update(body).digest('base64')}:`
    const viaLib = async (key: ReturnType<typeof createSigner>) =>
      (
        await httpbis.signMessage(
          {
            key,
            fields: ['@method', '@target-uri', '@authority', 'content-digest'],
            params: ['created', 'nonce', 'keyid', 'alg'],
            paramValues: { nonce: randomUUID() },
          },
          { method: 'POST', url, headers: { 'content-digest': digest, host: new URL(url).host } },
        )
      ).headers as Record<string, string>
    for (const key of [createSigner(SECRET, 'hmac-sha256', 'ak_s'), createSigner(ed.privateKey, 'ed25519', 'ak_ed')]) {
      const headers = await viaLib(key)
      delete headers.host
      const { res, echo } = await reached(() => fetch(url, { method: 'POST', headers, body }))
      expect(res.status).toBe(200)
      expect(echo!.headers['x-consumer']).toBe(key.alg === 'ed25519' ? 'partner_ed' : 'partner_s')
      const tampered = await viaLib(key)
      delete tampered.host
      expect(await refused(() => fetch(`${url}&more=1`, { method: 'POST', headers: tampered, body }))).toBe('the signature does not verify')
    }
  })

  test('the TypeScript client of docs/signing-requests.md (hmac-sha256 and ed25519)', async () => {
    const url = `${gw.url}/api/partners/orders`
    const body = JSON.stringify({ sku: 'A-1', qty: 2 })
    const hmac = await signRequest('POST', url, { keyid: 'ak_s', secret: SECRET }, body, 'application/json')
    const a = await reached(() => fetch(url, { method: 'POST', headers: hmac, body }))
    expect(a.res.status).toBe(200)
    expect(a.echo!.headers['x-consumer']).toBe('partner_s')
    const pkcs8 = new Uint8Array(ed.privateKey.export({ type: 'pkcs8', format: 'der' }))
    const edHeaders = await signRequest('GET', url, { keyid: 'ak_ed', ed25519Pkcs8: pkcs8 })
    const b = await reached(() => fetch(url, { headers: edHeaders }))
    expect(b.res.status).toBe(200)
    expect(b.echo!.headers['x-consumer']).toBe('partner_ed')
    // Replayed, it is refused.
    expect(await refused(() => fetch(url, { headers: edHeaders }))).toContain('replay')
  })

  test('the TypeScript client in the doc is docs/sign-request.ts, verbatim', () => {
    const doc = readFileSync(join(ROOT, 'docs/signing-requests.md'), 'utf8')
    const block = /```ts\n([\s\S]*?)```/.exec(doc)![1]
    expect(block).toBe(readFileSync(join(ROOT, 'docs/sign-request.ts'), 'utf8'))
  })

  const hasTools = Bun.which('openssl') !== null && Bun.which('curl') !== null
  if (!hasTools) console.warn('require-hmac e2e: openssl or curl missing; the shell recipe test is skipped')
  test.skipIf(!hasTools)(
    'the curl + openssl recipe of docs/signing-requests.md',
    async () => {
      const doc = readFileSync(join(ROOT, 'docs/signing-requests.md'), 'utf8')
      const script = /```sh\n([\s\S]*?)```/.exec(doc)![1]!
      const secretFile = join(dir, 'partner.secret')
      writeFileSync(secretFile, `${SECRET}\n`)
      const run = (body: string) =>
        Bun.spawn(['bash', '-c', script], {
          env: { PATH: process.env.PATH!, URL: `${gw.url}/api/partners/orders`, KEYID: 'ak_s', SECRET_FILE: secretFile, BODY: body },
          stdout: 'pipe',
          stderr: 'pipe',
        })
      const proc = run('{"sku":"from-curl"}')
      const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
      expect(err).toBe('')
      expect(code).toBe(0)
      const echo = JSON.parse(out) as Echo
      expect(echo.headers['x-consumer']).toBe('partner_s')
      expect(echo.body).toBe('{"sku":"from-curl"}')
      expect(echo.path).toBe('/internal/partners/orders')
    },
    30_000,
  )
})

describe('with Redis', () => {
  test('a nonce is claimed across two gateways sharing Redis', async () => {
    const prefix = `portcullis-test-hmac-${randomUUID()}:`
    const args = ['--redis', 'redis://127.0.0.1:6379', '--redis-prefix', prefix]
    const [a, b] = await Promise.all([startGateway(dir, args, SECRETS), startGateway(dir, args, SECRETS)])
    try {
      // Signed over @path and @query (not the port), so either gateway can verify it.
      const path = '/api/orders/9?twice=1'
      const headers = () =>
        sign({
          url: '',
          lines: [
            ['"@method"', 'GET'],
            ['"@path"', '/api/orders/9'],
            ['"@query"', '?twice=1'],
          ],
        })
      const once = headers()
      expect((await b.fetch(path, { headers: headers() })).status).toBe(200)
      expect((await a.fetch(path, { headers: once })).status).toBe(200)
      expect(await refused(() => b.fetch(path, { headers: once }))).toContain('replay')
      expect(await refused(() => a.fetch(path, { headers: once }))).toContain('replay')
    } finally {
      await Promise.all([a.stop(), b.stop()])
    }
  }, 30_000)

  test('Redis down: a signed request is a 503 store_unavailable within 1 s', async () => {
    const port = await freePort()
    const redis = Bun.spawn(['redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdout: 'pipe',
      stderr: 'pipe',
    })
    let g: RunningGateway | null = null
    try {
      const lines: string[] = []
      const reader = redis.stdout.getReader()
      while (!lines.join('').includes('Ready to accept connections')) {
        const { value, done } = await reader.read()
        if (done) throw new Error(`redis-server exited: ${lines.join('')}`)
        lines.push(new TextDecoder().decode(value))
      }
      reader.releaseLock()
      g = await startGateway(dir, ['--redis', `redis://127.0.0.1:${port}`, '--redis-prefix', `portcullis-test-hmac-${randomUUID()}:`], SECRETS)
      const u = `${g.url}/api/orders/1`
      expect((await fetch(u, { headers: sign({ url: u }) })).status).toBe(200)
      redis.kill('SIGKILL')
      await redis.exited
      const started = performance.now()
      const detail = await refused(() => fetch(u, { headers: sign({ url: u }) }), 503, 'store_unavailable')
      expect(performance.now() - started).toBeLessThan(1_000)
      expect(detail).toContain('store')
    } finally {
      if (redis.exitCode === null) redis.kill('SIGKILL')
      await g?.stop()
    }
  }, 30_000)
})

describe('with --workers and no shared store', () => {
  test('start-up refuses require hmac: each worker would keep its own nonces', async () => {
    const dir = policyDir({
      'p.policy': 'app a {\n  key "ak_a"\n  secret env S\n}\nmatch GET /x {\n  require hmac\n  respond 200\n}\n',
    })
    try {
      const { code, stderr } = await runCli(['--policies', dir, '--workers', '2', '--port', '1', '--admin-port', '0', '--no-watch'], { S: 'secret' })
      expect(code).toBe(1)
      expect(stderr).toContain("'require hmac' needs --redis when the gateway runs --workers")
    } finally {
      removeDir(dir)
    }
  })
})
