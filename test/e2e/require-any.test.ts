// `require A or B`: either credential identifies the caller; the first method whose credential
// the request carries decides (a bad one is refused, not passed over); none gets every challenge.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { exportSPKI, generateKeyPair, SignJWT } from 'jose'
import { policyDir, removeDir, startGateway, startRecordingUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'
import { expectProblem, type Echo } from '../helpers/http.ts'

const API_KEY = 'any-key-0123456789abcdef'
let upstream: Upstream
let gw: RunningGateway
let dir: string
let token: string
const hits: Echo[] = []

beforeAll(async () => {
  const { publicKey, privateKey } = await generateKeyPair('ES256')
  token = await new SignJWT({ azp: 'mobile-client' })
    .setProtectedHeader({ alg: 'ES256' })
    .setSubject('user-7')
    .setIssuer('https://issuer.test')
    .setExpirationTime('10m')
    .sign(privateKey)
  upstream = startRecordingUpstream(hits)
  dir = policyDir({
    'jwt.pem': await exportSPKI(publicKey),
    'p.policy': `
app partner_a {
  api-key env ANY_KEY
}
app mobile {
  jwt-subject "mobile-client"
}
upstream echo { target ${upstream.url} }
match GET /either {
  require jwt issuer "https://issuer.test" key file "jwt.pem" or key
  set header X-Sub = jwt.sub
  proxy echo
}
`,
  })
  gw = await startGateway(dir, [], { ANY_KEY: API_KEY })
})

afterAll(async () => {
  await gw?.stop()
  upstream?.stop()
  removeDir(dir)
})

async function call(headers: Record<string, string>) {
  const before = hits.length
  const res = await gw.fetch('/either', { headers })
  return { res, reached: hits.length > before, echo: hits[hits.length - 1] }
}

describe('require jwt or key', () => {
  test('a token identifies the app it names', async () => {
    const { res, echo } = await call({ authorization: `Bearer ${token}` })
    expect(res.status).toBe(200)
    expect(echo!.headers['x-consumer']).toBe('mobile')
    expect(echo!.headers['x-sub']).toBe('user-7')
  })

  test('an API key identifies its app (no token claims then)', async () => {
    const { res, echo } = await call({ 'x-api-key': API_KEY })
    expect(res.status).toBe(200)
    expect(echo!.headers['x-consumer']).toBe('partner_a')
    expect(echo!.headers['x-sub']).toBeUndefined()
  })

  test('nothing presented: 401 with both challenges', async () => {
    const { res, reached } = await call({})
    await expectProblem(res, 401, 'unauthenticated')
    expect(res.headers.get('www-authenticate')).toBe('Bearer, ApiKey')
    expect(reached).toBe(false)
  })

  test('a bad token is refused even with a good API key beside it', async () => {
    const { res, reached } = await call({ authorization: `Bearer ${token.slice(0, -3)}abc`, 'x-api-key': API_KEY })
    await expectProblem(res, 401, 'unauthenticated')
    expect(reached).toBe(false)
  })
})
