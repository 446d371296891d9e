// The TLS listener (--tls-cert/--tls-key on --tls-port) next to the plain one.
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { policyDir, removeDir, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'

let gw: RunningGateway
let up: Upstream
let dir: string
let certDir: string
let tlsUrl: string

beforeAll(async () => {
  certDir = mkdtempSync(join(tmpdir(), 'portcullis-tls-'))
  const made = Bun.spawnSync([
    'openssl',
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout',
    join(certDir, 'key.pem'),
    '-out',
    join(certDir, 'cert.pem'),
  ])
  if (made.exitCode !== 0) throw new Error(made.stderr.toString())
  up = startUpstream()
  dir = policyDir({ 'main.policy': `match GET /scheme { respond 200 text "{request.scheme}" }\nmatch GET /up { proxy ${up.url} }\n` })
  const probe = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response() })
  const tlsPort = probe.port!
  probe.stop(true)
  gw = await startGateway(dir, ['--tls-cert', join(certDir, 'cert.pem'), '--tls-key', join(certDir, 'key.pem'), '--tls-port', String(tlsPort)])
  // The https line may come a moment after the http line startGateway waited for.
  tlsUrl = /listening on (https:\/\/\S+)/.exec(await gw.waitFor('stdout', /listening on https:\/\//))![1]!
})
afterAll(async () => {
  await gw?.stop()
  up?.stop()
  removeDir(dir)
  removeDir(certDir)
})

const ca = () => readFileSync(join(certDir, 'cert.pem'), 'utf8')

test('the readiness output names the https listener too', () => {
  expect(tlsUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/)
})

test('requests over TLS are served and know their scheme', async () => {
  const res = await fetch(`${tlsUrl}/scheme`, { tls: { ca: ca() } })
  expect(await res.text()).toBe('https')
  expect(await (await gw.fetch('/scheme')).text()).toBe('http')
})

test('X-Forwarded-Proto is https for requests that came over TLS', async () => {
  const res = await fetch(`${tlsUrl}/up`, { tls: { ca: ca() } })
  const body = (await res.json()) as { headers: Record<string, string> }
  expect(body.headers['x-forwarded-proto']).toBe('https')
})
