// `set query` / `remove query` edit only what they name: the upstream receives every
// other byte of the query exactly as the client sent it.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { policyDir, rawRequest, removeDir, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'
import { parseRaw, type Echo } from '../helpers/http.ts'

let up: Upstream
let gw: RunningGateway
let dir: string

beforeAll(async () => {
  up = startUpstream()
  dir = policyDir({
    'main.policy': `
upstream api { target ${up.url} }

match GET /plain { proxy api }
match GET /remove { remove query secret, token; proxy api }
match GET /set {
  set query added = "yes"
  set query b = "new value"
  proxy api
}
match GET /from-header { set query over = request.header.X-Over; proxy api }
match GET /both/{rest*} {
  remove query debug
  set query source = "gateway"
  rewrite path /inner/{rest*}
  proxy api
}
`,
  })
  gw = await startGateway(dir)
})

afterAll(async () => {
  await gw.stop()
  up.stop()
  removeDir(dir)
})

// The request target (path and query) the upstream saw.
async function upstreamTarget(path: string, headers: Record<string, string> = {}): Promise<string> {
  const res = await gw.fetch(path, { headers })
  expect(res.status).toBe(200)
  return ((await res.json()) as Echo).raw
}

const ODD = 'flag&a=%20x&b=~&keep=1+2&c=%7e&d=&e=%2B&f=a;b&g=1&g=2'

describe('query fidelity', () => {
  test('a route without query directives passes the query through', async () => {
    expect(await upstreamTarget(`/plain?${ODD}`)).toBe(`/plain?${ODD}`)
  })

  test('remove query leaves every other byte alone', async () => {
    expect(await upstreamTarget(`/remove?secret=s&${ODD}&token=t`)).toBe(`/remove?${ODD}`)
    expect(await upstreamTarget('/remove?flag&secret=1&a=%20x&token&b=~&keep=1+2')).toBe('/remove?flag&a=%20x&b=~&keep=1+2')
  })

  test('remove query matches the decoded name, so a re-spelled name is removed too', async () => {
    expect(await upstreamTarget('/remove?tok%65n=t&keep=1+2&sec%72et=s&flag')).toBe('/remove?keep=1+2&flag')
  })

  test('removing the only parameters drops the `?`', async () => {
    expect(await upstreamTarget('/remove?secret=s&token=t')).toBe('/remove')
  })

  test('remove query with nothing to remove sends the query as it came', async () => {
    expect(await upstreamTarget('/remove?flag&x=%7E&y=a+b')).toBe('/remove?flag&x=%7E&y=a+b')
  })

  test('set query replaces in place, drops repeats, appends when absent, and keeps the rest', async () => {
    expect(await upstreamTarget(`/set?${ODD}`)).toBe('/set?flag&a=%20x&b=new%20value&keep=1+2&c=%7e&d=&e=%2B&f=a;b&g=1&g=2&added=yes')
    expect(await upstreamTarget('/set?b=1&flag&b=2&added=no&b')).toBe('/set?b=new%20value&flag&added=yes')
  })

  test('a value with & and = stays one parameter; an absent reference removes it', async () => {
    expect(await upstreamTarget('/from-header?flag&over=old&z=%20', { 'x-over': 'a&b=c d' })).toBe('/from-header?flag&over=a%26b%3Dc%20d&z=%20')
    expect(await upstreamTarget('/from-header?flag&over=old&z=%20')).toBe('/from-header?flag&z=%20')
  })

  test('with a path rewrite, over a raw HTTP/1.1 request', async () => {
    const res = parseRaw(
      await rawRequest(gw.url, `GET /both/x/y?flag&debug=1&a=%20x&b=~&keep=1+2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`),
    )
    expect(res.status).toBe(200)
    expect((JSON.parse(res.body) as Echo).raw).toBe('/inner/x/y?flag&a=%20x&b=~&keep=1+2&source=gateway')
  })
})
