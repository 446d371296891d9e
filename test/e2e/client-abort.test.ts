// A client that goes away: the answer it never got is logged as 499 client_closed, and an
// upstream body still streaming to it is cancelled.
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { policyDir, removeDir, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'

let up: Upstream
let gw: RunningGateway
let dir: string
const streamCancelled = Promise.withResolvers<void>()
const slowArrived = Promise.withResolvers<void>()

beforeAll(async () => {
  up = startUpstream(async (req) => {
    if (new URL(req.url).pathname === '/slow') {
      slowArrived.resolve()
      await Bun.sleep(400) // a slow upstream: the client leaves before it answers
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

// Sends a request on a raw connection and closes it once `until` resolves; `until` gets a
// promise that resolves when the first bytes of the response body have arrived.
async function leaveWhen(path: string, until: (bodyStarted: Promise<void>) => Promise<void>): Promise<void> {
  const { hostname, port } = new URL(gw.url)
  let head = ''
  const bodyStarted = Promise.withResolvers<void>()
  const socket = await Bun.connect({
    hostname,
    port: Number(port),
    socket: {
      data(_s, d) {
        head += Buffer.from(d).toString('latin1')
        const end = head.indexOf('\r\n\r\n')
        if (end !== -1 && head.length > end + 4) bodyStarted.resolve()
      },
    },
  })
  socket.write(`GET ${path} HTTP/1.1\r\nHost: t\r\n\r\n`)
  await until(bodyStarted.promise)
  socket.end()
}

test('a client gone before the answer is logged as 499 client_closed', async () => {
  await leaveWhen('/slow', () => slowArrived.promise)
  await gw.waitFor('stdout', /"path":"\/slow"/, 3_000)
  const entry = gw.accessLog().find((e) => e.path === '/slow')!
  expect([entry.status, entry.gateway_error, entry.upstream_status]).toEqual([499, 'client_closed', 200])
})

test('a client gone mid-body cancels the upstream body', async () => {
  await leaveWhen('/stream', (bodyStarted) => bodyStarted)
  const cancelled = await Promise.race([streamCancelled.promise.then(() => true), Bun.sleep(3_000).then(() => false)])
  expect(cancelled).toBe(true)
  await gw.waitFor('stdout', /"path":"\/stream"/, 3_000)
  const entry = gw.accessLog().find((e) => e.path === '/stream')!
  expect(entry.status).toBe(499)
  expect(Number(entry.bytes_out)).toBeGreaterThan(0)
})
