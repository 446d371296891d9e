// A client that goes away: the answer it never got is logged as 499 client_closed, and an
// upstream body still streaming to it is cancelled.
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { policyDir, removeDir, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'

let up: Upstream
let gw: RunningGateway
let dir: string
const streamCancelled = Promise.withResolvers<void>()

beforeAll(async () => {
  up = startUpstream(async (req) => {
    if (new URL(req.url).pathname === '/slow') {
      await Bun.sleep(400)
      return new Response('late')
    }
    // An endless body: a chunk every 20 ms until the reader goes away.
    return new Response(
      new ReadableStream({
        async pull(c) {
          await Bun.sleep(20)
          c.enqueue(new Uint8Array(1024))
        },
        cancel: () => streamCancelled.resolve(),
      }),
    )
  })
  dir = policyDir({ 'main.policy': `match GET /slow { proxy ${up.url} }\nmatch GET /stream { proxy ${up.url} }\n` })
  gw = await startGateway(dir)
})
afterAll(async () => {
  await gw?.stop()
  up?.stop()
  removeDir(dir)
})

async function leaveAfter(path: string, ms: number): Promise<void> {
  const { hostname, port } = new URL(gw.url)
  const socket = await Bun.connect({ hostname, port: Number(port), socket: { data() {} } })
  socket.write(`GET ${path} HTTP/1.1\r\nHost: t\r\n\r\n`)
  await Bun.sleep(ms)
  socket.end()
}

test('a client gone before the answer is logged as 499 client_closed', async () => {
  await leaveAfter('/slow', 100)
  await gw.waitFor('stdout', /"path":"\/slow"/, 3_000)
  const entry = gw.accessLog().find((e) => e.path === '/slow')!
  expect([entry.status, entry.gateway_error, entry.upstream_status]).toEqual([499, 'client_closed', 200])
})

test('a client gone mid-body cancels the upstream body', async () => {
  await leaveAfter('/stream', 200)
  const cancelled = await Promise.race([streamCancelled.promise.then(() => true), Bun.sleep(3_000).then(() => false)])
  expect(cancelled).toBe(true)
  await gw.waitFor('stdout', /"path":"\/stream"/, 3_000)
  const entry = gw.accessLog().find((e) => e.path === '/stream')!
  expect(entry.status).toBe(499)
  expect(Number(entry.bytes_out)).toBeGreaterThan(0)
})
