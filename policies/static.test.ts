// static.policy: a `{rest*}` capture proxied to an inline URL (`proxy http://127.0.0.1:9300`), its
// /static prefix stripped, with a Cache-Control on the answer. The inline target is mocked by
// naming its origin.
import { afterAll, beforeEach, expect, test } from 'bun:test'
import { loadGateway } from 'portcullis/testing'

const STATIC = 'http://127.0.0.1:9300'
const gw = await loadGateway(import.meta.dir, {
  upstreams: { [STATIC]: () => new Response('body { color: teal }', { headers: { 'content-type': 'text/css' } }) },
})
afterAll(() => gw.close())
const server = gw.upstream(STATIC)
beforeEach(() => server.clear())

test('the rest of the path, any number of segments, goes to the static server without /static', async () => {
  const r = await gw.request('GET /static/css/site.css')
  expect(r.status, r.explain()).toBe(200)
  expect(await r.text()).toBe('body { color: teal }')
  expect(r.headers.get('content-type')).toBe('text/css')
  expect(server.last!.path).toBe('/css/site.css')
  await gw.request('GET /static/img/icons/2x/logo.png?v=3')
  expect(server.last!.path).toBe('/img/icons/2x/logo.png?v=3')
})

test('answers are cacheable for five minutes', async () => {
  const r = await gw.request('GET /static/css/site.css')
  expect(r.headers.get('cache-control')).toBe('public, max-age=300')
})

test('HEAD is allowed, other methods are not', async () => {
  const head = await gw.request('HEAD /static/css/site.css')
  expect(head.status, head.explain()).toBe(200)
  expect(server.last!.method).toBe('HEAD')
  const post = await gw.request('POST /static/css/site.css', { body: 'x' })
  expect(post.status, post.explain()).toBe(405)
  expect(post.headers.get('gateway-error')).toBe('method_not_allowed')
  expect(server.requests).toHaveLength(1)
})
