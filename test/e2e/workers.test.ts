// --workers N: N processes share one port; the primary runs the admin API, reloads them all
// and adds up their metrics.
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ADMIN_TOKEN, policyDir, removeDir, startGateway, type RunningGateway } from '../helpers/gateway.ts'

let gw: RunningGateway
let dir: string
let port: number

// Polls the collected output, like the helper's waitFor, for `n` lines matching `pattern`.
async function lines(stream: string[], pattern: RegExp, n: number, timeoutMs = 5_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const hits = stream.filter((l) => pattern.test(l))
    if (hits.length >= n) return hits
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} lines matching ${pattern}:\n${stream.join('\n')}`)
    await Bun.sleep(10)
  }
}

beforeAll(async () => {
  const probe = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response() })
  port = probe.port!
  probe.stop(true)
  dir = policyDir({ 'main.policy': 'match GET /pid { respond 200 text "v1" }\n' })
  gw = await startGateway(dir, ['--workers', '2', '--port', String(port), '--no-watch'])
})
afterAll(async () => {
  await gw?.stop()
  removeDir(dir)
})

test('both workers serve the shared port and the primary prints one readiness line', async () => {
  expect(gw.url).toBe(`http://127.0.0.1:${port}`)
  const results = await Promise.all(Array.from({ length: 20 }, () => gw.fetch('/pid').then((r) => r.text())))
  expect(results).toEqual(Array(20).fill('v1'))
  expect(gw.stdout.filter((l) => l.includes('listening on'))).toHaveLength(1)
  expect(gw.stderr.join('\n')).toContain('2 workers')
})

test('/metrics adds up the workers', async () => {
  // Workers report every second: ask until both reports hold the 20 requests.
  const count = async () => {
    const text = await (await gw.admin('/metrics')).text()
    const line = text.split('\n').find((l) => l.startsWith('gateway_requests_total{route="GET /pid",status="200"'))
    return Number(line?.split(' ').at(-1) ?? 0)
  }
  const deadline = Date.now() + 3_000
  let n = await count()
  while (n < 20 && Date.now() < deadline) {
    await Bun.sleep(100)
    n = await count()
  }
  expect(n).toBe(20)
})

test('POST /reload reloads every worker', async () => {
  writeFileSync(join(dir, 'main.policy'), 'match GET /pid { respond 200 text "v2" }\n')
  const res = await gw.admin('/reload', { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
  expect(res.status).toBe(200)
  // The primary signals the workers; each logs its own reload.
  await lines(gw.stderr, /reloaded \(SIGHUP\)/, 2)
  const seen = await Promise.all(Array.from({ length: 10 }, () => gw.fetch('/pid').then((r) => r.text())))
  expect(seen).toEqual(Array(10).fill('v2'))
})

test('SIGTERM stops the primary and its workers with exit 0', async () => {
  expect(await gw.stop('SIGTERM')).toBe(0)
  const refused = await fetch(`${gw.url}/pid`).then(
    () => false,
    () => true,
  )
  expect(refused).toBe(true)
})
