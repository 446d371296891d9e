// Lifecycle of the real gateway process: hot reload (watch, SIGHUP, admin), reload under
// traffic, broken edits, in-flight requests across a reload, graceful shutdown.
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { mkdirSync, renameSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ADMIN_TOKEN, policyDir, removeDir, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'

let up: Upstream
// Requests to /slow are held until the test lets them go; `arrived` resolves when one reaches the upstream.
let slowArrived = Promise.withResolvers<void>()
let slowRelease = Promise.withResolvers<void>()
const dirs: string[] = []
const gateways: RunningGateway[] = []

beforeAll(() => {
  up = startUpstream(async (req) => {
    const path = new URL(req.url).pathname
    if (path === '/slow') {
      slowArrived.resolve()
      await slowRelease.promise
      return new Response('slow-done')
    }
    if (path === '/stream') {
      let i = 0
      const body = new ReadableStream<Uint8Array>({
        async pull(c) {
          if (i === 5) return c.close()
          if (i > 0) await Bun.sleep(100)
          c.enqueue(new TextEncoder().encode(`chunk${i++};`))
        },
      })
      return new Response(body)
    }
    return new Response(`upstream ${path}`)
  })
})
afterEach(async () => {
  slowRelease.resolve()
  for (const gw of gateways.splice(0)) await gw.stop('SIGKILL')
  for (const d of dirs.splice(0)) removeDir(d)
  slowArrived = Promise.withResolvers<void>()
  slowRelease = Promise.withResolvers<void>()
})
afterAll(() => up?.stop())

const versioned = (n: number) => `upstream api { target ${up.url} }
match GET /v { set response header X-Version = "${n}"; proxy api }
match GET /slow { set response header X-Version = "${n}"; proxy api }
match GET /stream { proxy api }
`

async function start(files: Record<string, string>, args: string[] = []): Promise<{ gw: RunningGateway; dir: string }> {
  const dir = policyDir(files)
  dirs.push(dir)
  const gw = await startGateway(dir, args)
  gateways.push(gw)
  return { gw, dir }
}

// Polls `probe` until it returns true, for what no output announces (a listener closing);
// returns the elapsed milliseconds, or throws after `timeoutMs`.
async function until(probe: () => Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const started = Date.now()
  for (;;) {
    if (await probe()) return Date.now() - started
    if (Date.now() - started > timeoutMs) throw new Error(`not within ${timeoutMs} ms: ${what}`)
    await Bun.sleep(20)
  }
}

const bodyOf = async (gw: RunningGateway, path: string) => {
  const res = await gw.fetch(path)
  return `${res.status} ${await res.text()}`
}

async function canConnect(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url)
  try {
    const s = await Bun.connect({ hostname, port: Number(port), socket: { data() {}, error() {} } })
    s.end()
    return true
  } catch {
    return false
  }
}

describe('hot reload', () => {
  test('editing a policy file switches routes within a second (watch on)', async () => {
    const { gw, dir } = await start({ 'main.policy': 'match GET /a { respond 200 text "A1" }\n' })
    expect(await bodyOf(gw, '/a')).toBe('200 A1')
    expect(await bodyOf(gw, '/b')).toStartWith('404 ')
    writeFileSync(join(dir, 'main.policy'), 'match GET /b { respond 200 text "B2" }\n')
    await gw.waitFor('stderr', /reloaded \(files changed\): version \d+, 1 routes/, 1_000)
    expect(await bodyOf(gw, '/b')).toBe('200 B2')
    const gone = await gw.fetch('/a')
    expect(gone.status).toBe(404)
    expect(gone.headers.get('gateway-error')).toBe('no_route')
  })

  test('a new file in a sub-directory is picked up too', async () => {
    const { gw, dir } = await start({ 'main.policy': 'match GET /a { respond 200 text "A" }\n' })
    expect(await bodyOf(gw, '/extra')).toStartWith('404 ')
    mkdirSync(join(dir, 'sub'))
    writeFileSync(join(dir, 'sub/extra.policy'), 'match GET /extra { respond 200 text "E" }\n')
    await gw.waitFor('stderr', /reloaded \(files changed\): version \d+, 2 routes/, 1_500)
    expect(await bodyOf(gw, '/extra')).toBe('200 E')
    expect(await bodyOf(gw, '/a')).toBe('200 A')
  })

  test('an atomic save (write aside, rename over) and a deleted file both reload', async () => {
    const { gw, dir } = await start({
      'main.policy': 'match GET /a { respond 200 text "A1" }\n',
      'b.policy': 'match GET /b { respond 200 text "B" }\n',
    })
    writeFileSync(join(dir, '.main.policy.tmp'), 'match GET /a { respond 200 text "A2" }\n')
    renameSync(join(dir, '.main.policy.tmp'), join(dir, 'main.policy'))
    await gw.waitFor('stderr', /reloaded \(files changed\): version \d+, 2 routes/, 1_000)
    expect(await bodyOf(gw, '/a')).toBe('200 A2')
    unlinkSync(join(dir, 'b.policy'))
    await gw.waitFor('stderr', /reloaded \(files changed\): version \d+, 1 routes/, 1_000)
    expect((await gw.fetch('/b')).status).toBe(404)
    expect(await bodyOf(gw, '/a')).toBe('200 A2')
  })

  test('with --no-watch edits wait for SIGHUP, which reloads', async () => {
    const { gw, dir } = await start({ 'main.policy': 'match GET /a { respond 200 text "one" }\n' }, ['--no-watch'])
    writeFileSync(join(dir, 'main.policy'), 'match GET /a { respond 200 text "two" }\n')
    // Not waiting for an event: a window four times the watcher's debounce in which nothing may happen.
    await Bun.sleep(600)
    expect(await bodyOf(gw, '/a')).toBe('200 one')
    gw.proc.kill('SIGHUP')
    await gw.waitFor('stderr', /reloaded \(SIGHUP\)/, 1_000)
    expect(await bodyOf(gw, '/a')).toBe('200 two')
    expect(gw.stderr.join('\n')).not.toContain('files changed')
    expect(gw.proc.exitCode).toBeNull()
  })

  test('hot reload under steady traffic: no failed request, versions only move forward', async () => {
    const { gw, dir } = await start({ 'main.policy': versioned(1) })
    const LAST = 7
    let writing = true
    const failures: string[] = []
    const seen = new Set<string>()
    // Resolved by the first client that gets an answer from version n.
    const firstSeen = Array.from({ length: LAST + 1 }, () => Promise.withResolvers<void>())
    const deadline = Date.now() + 8_000
    const client = async () => {
      const versions: number[] = []
      while (Date.now() < deadline && (writing || versions.at(-1) !== LAST)) {
        try {
          const res = await gw.fetch('/v')
          const text = await res.text()
          if (res.status !== 200 || text !== 'upstream /v') failures.push(`${res.status} ${text}`)
          const v = Number(res.headers.get('x-version'))
          seen.add(String(v))
          firstSeen[v]?.resolve()
          versions.push(v)
        } catch (err) {
          failures.push(String(err))
        }
      }
      return versions
    }
    const clients = Array.from({ length: 8 }, client)
    // Each version is written once the previous one has answered a client.
    for (let n = 2; n <= LAST; n++) {
      await firstSeen[n - 1]!.promise
      writeFileSync(join(dir, 'main.policy'), versioned(n))
    }
    await firstSeen[LAST]!.promise
    writing = false
    const results = await Promise.all(clients)
    expect(failures).toEqual([])
    for (const versions of results) {
      expect(versions.length).toBeGreaterThan(20)
      for (let i = 1; i < versions.length; i++)
        if (versions[i]! < versions[i - 1]!) throw new Error(`version went back: ${versions.slice(Math.max(0, i - 3), i + 2)}`)
      expect(versions.at(-1)).toBe(LAST)
    }
    expect([...seen].sort()).toEqual(['1', '2', '3', '4', '5', '6', '7'])
  }, 15_000)

  test('a broken edit logs file:LINE:COL diagnostics, keeps the old program, and a fix reloads', async () => {
    const { gw, dir } = await start({ 'main.policy': 'match GET /a { respond 200 text "good1" }\n' })
    writeFileSync(join(dir, 'main.policy'), 'match GET /a {\n  respond 200 text "bad"\n}\n}\n')
    const line = await gw.waitFor('stderr', /main\.policy:\d+:\d+: error:/, 2_000)
    expect(line).toContain(`${join(dir, 'main.policy')}:4:1: error:`)
    await gw.waitFor('stderr', /reload \(files changed\) rejected; still serving version 1/)
    expect(await bodyOf(gw, '/a')).toBe('200 good1')
    // Another try at the broken file keeps the old program too.
    gw.proc.kill('SIGHUP')
    await gw.waitFor('stderr', /reload \(SIGHUP\) rejected; still serving version 1/)
    expect(await bodyOf(gw, '/a')).toBe('200 good1')
    writeFileSync(join(dir, 'main.policy'), 'match GET /a { respond 200 text "good2" }\n')
    await gw.waitFor('stderr', /reloaded \(files changed\)/, 1_500)
    expect(await bodyOf(gw, '/a')).toBe('200 good2')
    const metrics = await (await gw.admin('/metrics')).text()
    expect(metrics).toMatch(/^gateway_reloads_total\{result="rejected"\} 2$/m)
    expect(metrics).toMatch(/^gateway_reloads_total\{result="applied"\} 1$/m)
  })

  test('a request in flight during a reload finishes on the program it started with', async () => {
    const { gw, dir } = await start({ 'main.policy': versioned(1) }, ['--no-watch'])
    const inflight = gw.fetch('/slow')
    await slowArrived.promise
    writeFileSync(join(dir, 'main.policy'), versioned(2))
    const reload = await gw.admin('/reload', { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
    expect(reload.status).toBe(200)
    const fresh = await gw.fetch('/v')
    expect(fresh.headers.get('x-version')).toBe('2')
    slowRelease.resolve()
    const res = await inflight
    expect(res.status).toBe(200)
    expect(res.headers.get('x-version')).toBe('1')
    expect(await res.text()).toBe('slow-done')
  })

  test('a response body still streaming during a reload is delivered whole', async () => {
    const { gw, dir } = await start({ 'main.policy': versioned(1) }, ['--no-watch'])
    const res = await gw.fetch('/stream')
    expect(res.status).toBe(200)
    const reader = res.body!.getReader()
    let text = new TextDecoder().decode((await reader.read()).value)
    writeFileSync(join(dir, 'main.policy'), versioned(2))
    const reload = await gw.admin('/reload', { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
    expect(reload.status).toBe(200)
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      text += new TextDecoder().decode(value)
    }
    expect(text).toBe('chunk0;chunk1;chunk2;chunk3;chunk4;')
  })
})

describe('graceful shutdown', () => {
  test('SIGTERM: the in-flight request completes, new connections are refused, exit 0', async () => {
    const { gw } = await start({ 'main.policy': versioned(1) })
    expect(await canConnect(gw.url)).toBe(true)
    const inflight = gw.fetch('/slow')
    await slowArrived.promise
    gw.proc.kill('SIGTERM')
    await gw.waitFor('stderr', /SIGTERM: finishing in-flight requests/)
    await until(async () => !(await canConnect(gw.url)), 1_000, 'the listener closes after SIGTERM')
    expect(gw.proc.exitCode).toBeNull() // still draining
    slowRelease.resolve()
    const res = await inflight
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('slow-done')
    const code = await Promise.race([gw.proc.exited, Bun.sleep(5_000).then(() => -1)])
    expect(code).toBe(0)
    // The access log line of the drained request made it out before exit.
    await gw.waitFor('stdout', /"path":"\/slow".*"status":200/, 1_000)
  })

  test('SIGTERM while a response body is streaming: the body is delivered whole, exit 0', async () => {
    const { gw } = await start({ 'main.policy': versioned(1) })
    const res = await gw.fetch('/stream')
    const reader = res.body!.getReader()
    let text = new TextDecoder().decode((await reader.read()).value)
    gw.proc.kill('SIGTERM')
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      text += new TextDecoder().decode(value)
    }
    expect(text).toBe('chunk0;chunk1;chunk2;chunk3;chunk4;')
    expect(await Promise.race([gw.proc.exited, Bun.sleep(5_000).then(() => -1)])).toBe(0)
  })

  test('SIGTERM with nothing in flight exits 0 promptly', async () => {
    const { gw } = await start({ 'main.policy': versioned(1) })
    expect((await gw.fetch('/v')).status).toBe(200)
    const t0 = Date.now()
    expect(await gw.stop('SIGTERM')).toBe(0)
    expect(Date.now() - t0).toBeLessThan(2_000)
  })

  test('SIGINT exits 0 as well', async () => {
    const { gw } = await start({ 'main.policy': versioned(1) })
    expect((await gw.fetch('/v')).status).toBe(200)
    expect(await gw.stop('SIGINT')).toBe(0)
    expect(gw.stderr.join('\n')).toContain('SIGINT: finishing in-flight requests')
    expect(await canConnect(gw.url)).toBe(false)
  })
})
