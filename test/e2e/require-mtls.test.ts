// `require mtls` through the real gateway: client certificates on the TLS listener
// (--client-ca), X-Forwarded-Client-Cert from --trust-proxy peers only, revocation.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { ADMIN_TOKEN, policyDir, removeDir, startGateway, startRecordingUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'
import { Certs } from '../helpers/certs.ts'
import { expectProblem, type Echo } from '../helpers/http.ts'

const certs = new Certs()
let upstream: Upstream
let gw: RunningGateway
let tlsUrl: string
let dir: string
const hits: Echo[] = []

type Who = 'alice' | 'bob' | 'mallory' | 'expired' | null
const clientTls = (who: Who) => ({ ca: certs.pem('server.pem'), ...(who ? { cert: certs.pem(`${who}.pem`), key: certs.pem(`${who}.key`) } : {}) })

beforeAll(async () => {
  certs.make('server', '/CN=localhost', null, 1, 0, ['-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'])
  certs.make('ca', '/CN=Portcullis Test Client CA', null, 10, 0)
  certs.make('other-ca', '/CN=Some Other CA', null, 10, 0)
  certs.make('alice', '/CN=alice', 'ca', 5, 1)
  certs.make('bob', '/CN=bob', 'ca', 5, 2) // chains to the CA, but no app has it
  certs.make('mallory', '/CN=mallory', 'other-ca', 5, 3)
  certs.make('expired', '/CN=expired', 'ca', -1, 4)
  upstream = startRecordingUpstream(hits)
  dir = policyDir({
    'p.policy': `
app alice_app {
  cert sha256 "${certs
    .sha256('alice')
    .toUpperCase()
    .replace(/(..)(?!$)/g, '$1:')}"
  group partners
}
app proxied_app {
  cert sha256 "${'ab'.repeat(32)}"
}
upstream echo { target ${upstream.url} }
match GET /mtls {
  require mtls
  set header X-App = app.name
  proxy echo
}
match GET /open { proxy echo }
`,
  })
  const probe = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response() })
  const tlsPort = probe.port!
  probe.stop(true)
  gw = await startGateway(dir, [
    '--tls-cert',
    certs.path('server.pem'),
    '--tls-key',
    certs.path('server.key'),
    '--tls-port',
    String(tlsPort),
    '--client-ca',
    certs.path('ca.pem'),
    '--trust-proxy',
    '10.9.9.9',
  ])
  tlsUrl = /listening on (https:\/\/\S+)/.exec(await gw.waitFor('stdout', /listening on https:\/\//))![1]!
})

afterAll(async () => {
  await gw?.stop()
  upstream?.stop()
  removeDir(dir)
  removeDir(certs.dir)
})

async function call(who: Who, path = '/mtls', headers: Record<string, string> = {}) {
  const before = hits.length
  const res = await fetch(`${tlsUrl}${path}`, { tls: clientTls(who), headers })
  return { res, reached: hits.length > before, echo: hits[hits.length - 1] }
}

describe('require mtls', () => {
  test("a certificate of the app's fingerprint, chained to the CA: the app, and X-Consumer upstream", async () => {
    const { res, reached, echo } = await call('alice', '/mtls', { 'x-forwarded-client-cert': `Hash=${'ab'.repeat(32)}`, 'x-consumer': 'x' })
    expect(res.status).toBe(200)
    expect(reached).toBe(true)
    expect(echo!.headers['x-app']).toBe('alice_app')
    expect(echo!.headers['x-consumer']).toBe('alice_app')
    expect(echo!.headers['x-forwarded-client-cert']).toBeUndefined()
  })

  test.each([['bob'], ['mallory'], ['expired'], [null]] as [Who][])('%p is refused with 401, the upstream never reached', async (who) => {
    const { res, reached } = await call(who)
    await expectProblem(res, 401, 'unauthenticated')
    expect(reached).toBe(false)
  })

  test('without a certificate, plain routes still work over TLS', async () => {
    expect((await call(null, '/open')).res.status).toBe(200)
  })

  test('X-Forwarded-Client-Cert from a peer not in --trust-proxy is ignored', async () => {
    const { res, reached } = await call(null, '/mtls', { 'x-forwarded-client-cert': `By=spiffe://x;Hash=${'ab'.repeat(32)};Subject="CN=p"` })
    await expectProblem(res, 401, 'unauthenticated')
    expect(reached).toBe(false)
    const plain = await gw.fetch('/mtls', { headers: { 'x-forwarded-client-cert': `Hash=${'ab'.repeat(32)}` } })
    await expectProblem(plain, 401, 'unauthenticated')
  })
})

describe('revocation', () => {
  test('a store app whose certificate is revoked is refused at the next request, on the same connection', async () => {
    certs.make('carol', '/CN=carol', 'ca', 5, 5)
    const put = await gw.admin('/apps/carol_app', {
      method: 'PUT',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ 'cert-sha256': certs.sha256('carol') }),
    })
    expect(put.status).toBe(201)
    const tlsCarol = { ca: certs.pem('server.pem'), cert: certs.pem('carol.pem'), key: certs.pem('carol.key') }
    const first = await fetch(`${tlsUrl}/mtls`, { tls: tlsCarol })
    expect(first.status).toBe(200)
    expect(((await first.json()) as Echo).headers['x-consumer']).toBe('carol_app')
    const del = await gw.admin('/apps/carol_app', { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
    expect(del.status).toBe(204)
    await expectProblem(await fetch(`${tlsUrl}/mtls`, { tls: tlsCarol }), 401, 'unauthenticated')
  })
})

describe('X-Forwarded-Client-Cert from a trusted TLS terminator (in process)', () => {
  test('the Hash of the element the nearest proxy added selects the app; a forged earlier one does not', async () => {
    const { buildProgram } = await import('../../src/index.ts')
    const { ipMatcher, parseCidr } = await import('../../src/runtime/ip.ts')
    const built = await buildProgram(dir, { trustProxy: ipMatcher([parseCidr('10.9.9.9')!]), upstreams: { echo: upstream.url } })
    if (!built.program) throw new Error('policies do not build')
    const program = built.program
    try {
      const ask = (xfcc: string, ip = '10.9.9.9') =>
        program.fetch(new Request('http://gw/mtls', { headers: { 'x-forwarded-client-cert': xfcc } }), { ip, tls: false })
      const ok = await ask(`By=spiffe://edge;Hash=${'ab'.repeat(32)};Subject="CN=p"`)
      expect(ok.status).toBe(200)
      expect(((await ok.json()) as Echo).headers['x-consumer']).toBe('proxied_app')
      // The client forged the first element; the terminator appended the real one (unknown).
      await expectProblem(await ask(`Hash=${'ab'.repeat(32)},Hash=${'cd'.repeat(32)}`), 401, 'unauthenticated')
      await expectProblem(await ask('By=spiffe://edge;Subject="CN=p"'), 401, 'unauthenticated')
      // The same header from a peer that is not trusted.
      await expectProblem(await ask(`Hash=${'ab'.repeat(32)}`, '10.9.9.8'), 401, 'unauthenticated')
    } finally {
      await program.dispose()
    }
  })
})
