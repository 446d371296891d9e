// `script` directives in the real gateway with a real upstream: failures and budgets, what the
// checker says, hot reload of a script under traffic (no failed request), scripts outside the
// policy directory, the access-log line of a log script, and kv shared through Redis.
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Redis from 'ioredis'
import { echo, policyDir, removeDir, runCli, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'
import { until } from '../helpers/poll.ts'

setDefaultTimeout(20_000)

let up: Upstream
const dirs: string[] = []
const gateways: RunningGateway[] = []
const REDIS = 'redis://127.0.0.1:6379'
const PREFIX = `portcullis-test-scripts-${process.pid}-${Date.now()}:`

beforeAll(() => {
  up = startUpstream(echo)
})
afterEach(async () => {
  for (const gw of gateways.splice(0)) await gw.stop('SIGKILL')
  for (const d of dirs.splice(0)) removeDir(d)
})
afterAll(async () => {
  up?.stop()
  const r = new Redis(REDIS)
  const keys = await r.keys(`${PREFIX}*`)
  if (keys.length) await r.del(...keys)
  await r.quit()
})

async function start(files: Record<string, string>, args: string[] = []): Promise<{ gw: RunningGateway; dir: string }> {
  const dir = policyDir(files)
  dirs.push(dir)
  const gw = await startGateway(dir, args)
  gateways.push(gw)
  return { gw, dir }
}

const events = (gw: RunningGateway) => gw.stderr.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>)

describe('failures and budgets', () => {
  const files = {
    'main.policy': `
upstream up { target UPSTREAM }
match GET /throws { script access "scripts/throws.ts"; proxy up }
match GET /hangs { script rewrite "scripts/hangs.ts" timeout 100ms; proxy up }
match GET /loop { script access "scripts/loop.ts"; proxy up }
match GET /wrong { script access "scripts/wrong.ts"; proxy up }
match GET /forever { script access "scripts/forever.ts" timeout 50ms interruptible; proxy up }
match GET /fast { proxy up }
`,
    'scripts/throws.ts': "export default () => { throw new Error('database password is hunter2') }\n",
    'scripts/hangs.ts': 'export default async () => { await new Promise(() => {}) }\n',
    // A synchronous hog: 300 ms of busy loop (JavaScript cannot interrupt it).
    'scripts/loop.ts': 'export default () => { const end = Date.now() + 300; while (Date.now() < end) {} }\n',
    'scripts/wrong.ts': "export default () => 'allowed'\n",
    'scripts/forever.ts': 'export default () => {\n  for (;;) {}\n}\n',
  }
  const startFailures = () => start({ ...files, 'main.policy': files['main.policy'].replace('UPSTREAM', up.url) })

  test('a throw is a 500 internal_error; the event log has the route, the script and the stack, the client nothing of it', async () => {
    const { gw } = await startFailures()
    const res = await gw.fetch('/throws')
    expect(res.status).toBe(500)
    expect(res.headers.get('gateway-error')).toBe('internal_error')
    const body = await res.text()
    expect(JSON.parse(body).detail).toBe("the route's access script failed")
    expect(body).not.toContain('hunter2')
    const e = await until(() => events(gw).find((x) => x.event === 'script'), Boolean, 2_000, 'the script event')
    expect(e).toMatchObject({ level: 'error', route: 'GET /throws', request_id: res.headers.get('x-request-id') })
    expect(String(e!.script)).toEndWith('scripts/throws.ts')
    expect(String(e!.message)).toContain('database password is hunter2')
    expect(String(e!.message)).toContain('throws.ts:1:') // the stack's frame in the script
  })

  test('an async script past its budget is cut off (500), and the gateway goes on serving', async () => {
    const { gw } = await startFailures()
    const t0 = performance.now()
    const res = await gw.fetch('/hangs')
    const took = performance.now() - t0
    expect(res.status).toBe(500)
    expect(((await res.json()) as { detail: string }).detail).toBe("the route's rewrite script did not finish within its 100 ms budget")
    expect(took).toBeGreaterThanOrEqual(99)
    expect(took).toBeLessThan(1_000)
    expect((await gw.fetch('/fast')).status).toBe(200)
  })

  test('a synchronous loop cannot be interrupted: its request fails after it, and the process waited meanwhile', async () => {
    const { gw } = await startFailures()
    const t0 = performance.now()
    const looping = gw.fetch('/loop')
    await Bun.sleep(100) // the loop has the thread now
    const fast = gw.fetch('/fast').then((r) => ({ status: r.status, at: performance.now() - t0 }))
    const res = await looping
    const loopedFor = performance.now() - t0
    expect(res.status).toBe(500)
    expect(((await res.json()) as { detail: string }).detail).toBe("the route's access script did not finish within its 50 ms budget")
    expect(loopedFor).toBeGreaterThanOrEqual(295)
    const f = await fast
    expect(f.status).toBe(200)
    expect(f.at).toBeGreaterThanOrEqual(loopedFor - 50) // held up until the loop ended
    const e = await until(() => events(gw).find((x) => x.route === 'GET /loop'), Boolean, 2_000, 'the loop event')
    expect(String(e!.message)).toMatch(/ran synchronously for \d+ ms, blocking every request of this process meanwhile: its budget is 50 ms/)
  })

  test('`interruptible`: an endless synchronous loop is stopped at the budget, and the process serves on', async () => {
    const { gw } = await startFailures()
    const t0 = performance.now()
    const res = await gw.fetch('/forever')
    const took = performance.now() - t0
    expect(res.status).toBe(500)
    expect(((await res.json()) as { detail: string }).detail).toBe("the route's access script did not finish within its 50 ms budget")
    expect(took).toBeGreaterThanOrEqual(49)
    expect(took).toBeLessThan(1_000)
    await gw.waitFor('stderr', /was interrupted after \d+ ms of synchronous work: its budget is 50 ms/)
    expect((await gw.fetch('/fast')).status).toBe(200)
    expect((await gw.fetch('/forever')).status).toBe(500) // and again
  })

  test('a return value that is no verdict is a 500', async () => {
    const { gw } = await startFailures()
    const res = await gw.fetch('/wrong')
    expect(res.status).toBe(500)
    await gw.waitFor('stderr', /returned a string; a script returns nothing, ctx\.refuse\(…\) or ctx\.respond\(…\)/)
  })
})

test('gateway check: a missing module at the policy line, file:line:col', async () => {
  const dir = policyDir({
    'routes.policy':
      'match GET /a {\n  script access "scripts/missing.ts"\n  respond 204\n}\nmatch GET /b {\n  script access "scripts/imports-missing.ts"\n  respond 204\n}\n',
    'scripts/imports-missing.ts': "import { helper } from './helper.ts'\nexport default () => helper()\n",
  })
  dirs.push(dir)
  const r = await runCli(['check', dir])
  expect(r.code).toBe(1)
  expect(r.stderr).toContain(`${join(dir, 'routes.policy')}:2:17: error: script "scripts/missing.ts" does not exist`)
  expect(r.stderr).toContain(
    `${join(dir, 'routes.policy')}:6:17: error: script "scripts/imports-missing.ts" does not load: Cannot find module './helper.ts' imported from`,
  )
  expect(r.stderr).toContain('2 errors')
})

describe('hot reload', () => {
  const version = (n: number) => `import type { RewriteScript } from 'portcullis/script'
export default ((ctx) => {
  ctx.upstream.setHeader('X-Script-Version', '${n}')
}) satisfies RewriteScript
`
  const policy = () => `upstream up { target ${up.url} }
match GET /v { script rewrite "scripts/version.ts"; proxy up }
`

  test('a script rewritten under traffic: every answer is 200, and the new versions appear in order', async () => {
    const { gw, dir } = await start({ 'main.policy': policy(), 'scripts/version.ts': version(1) })
    const LAST = 5
    const failures: string[] = []
    const firstSeen = Array.from({ length: LAST + 1 }, () => Promise.withResolvers<void>())
    let writing = true
    const deadline = performance.now() + 10_000
    const client = async () => {
      const versions: number[] = []
      // Bounded: until the last version was seen after the writes, or the deadline.
      while (performance.now() < deadline && (writing || versions.at(-1) !== LAST)) {
        try {
          const res = await gw.fetch('/v')
          const body = (await res.json()) as { headers: Record<string, string> }
          if (res.status !== 200) failures.push(`${res.status} ${JSON.stringify(body)}`)
          const v = Number(body.headers['x-script-version'])
          firstSeen[v]?.resolve()
          versions.push(v)
        } catch (err) {
          failures.push(String(err))
        }
      }
      return versions
    }
    const clients = Array.from({ length: 6 }, client)
    for (let n = 2; n <= LAST; n++) {
      await firstSeen[n - 1]!.promise
      writeFileSync(join(dir, 'scripts/version.ts'), version(n)) // a plain write, not an atomic rename
    }
    await firstSeen[LAST]!.promise
    writing = false
    const results = await Promise.all(clients)
    expect(failures).toEqual([])
    for (const versions of results) {
      expect(versions.length).toBeGreaterThan(10)
      for (let i = 1; i < versions.length; i++)
        if (versions[i]! < versions[i - 1]!) throw new Error(`version went back: ${versions.slice(Math.max(0, i - 3), i + 2)}`)
      expect(versions.at(-1)).toBe(LAST)
    }
  })

  test('a module the script imports is reloaded too', async () => {
    const { gw, dir } = await start({
      'main.policy': `match GET /w { script access "scripts/uses.ts"; respond 204 }\n`,
      'scripts/uses.ts': "import { word } from './lib/word.ts'\nexport default (ctx) => ctx.respond(200, word)\n",
      'scripts/lib/word.ts': "export const word = 'first'\n",
    })
    expect(await (await gw.fetch('/w')).text()).toBe('first')
    writeFileSync(join(dir, 'scripts/lib/word.ts'), "export const word = 'second'\n")
    // The reload report names the route whose script changed.
    await gw.waitFor('stderr', /reloaded \(files changed\): version 2, 1 routes; routes ~GET \/w/, 3_000)
    await until(
      async () => (await gw.fetch('/w')).text(),
      (t) => t === 'second',
      3_000,
      'the new word',
    )
  })

  test('a broken script keeps the last good program serving; the fix reloads', async () => {
    const { gw, dir } = await start({ 'main.policy': policy(), 'scripts/version.ts': version(1) })
    const versionOf = async () => ((await (await gw.fetch('/v')).json()) as { headers: Record<string, string> }).headers['x-script-version']
    expect(await versionOf()).toBe('1')
    writeFileSync(join(dir, 'scripts/version.ts'), 'export default (ctx) => {\n  ctx.upstream.setHeader(\n}\n')
    const line = await gw.waitFor('stderr', /scripts\/version\.ts\\" does not load/, 3_000)
    expect(line).toContain(`main.policy:2:31: error: script \\"scripts/version.ts\\" does not load: Unexpected }`)
    expect(line).toContain('still serving version 1')
    expect(await versionOf()).toBe('1')
    writeFileSync(join(dir, 'scripts/version.ts'), version(2))
    await until(versionOf, (v) => v === '2', 3_000, 'the fixed script')
  })

  test('a script outside the policy directory is watched too', async () => {
    const outside = mkdtempSync(join(tmpdir(), 'portcullis-scripts-'))
    dirs.push(outside)
    writeFileSync(join(outside, 'version.ts'), version(1))
    const { gw } = await start({
      'main.policy': `upstream up { target ${up.url} }\nmatch GET /v { script rewrite "${join(outside, 'version.ts')}"; proxy up }\n`,
    })
    const versionOf = async () => ((await (await gw.fetch('/v')).json()) as { headers: Record<string, string> }).headers['x-script-version']
    expect(await versionOf()).toBe('1')
    writeFileSync(join(outside, 'version.ts'), version(2))
    await until(versionOf, (v) => v === '2', 3_000, 'the outside script reloaded')
  })
})

test('a log script adds a field to the access-log line', async () => {
  const { gw } = await start({
    'main.policy': `match GET /logged/{id} { script log "scripts/audit.ts"; respond 200 text "ok" }\n`,
    'scripts/audit.ts': "export default (ctx) => { ctx.addField('order', ctx.request.params.id); ctx.addField('seen_status', ctx.status) }\n",
  })
  expect((await gw.fetch('/logged/77')).status).toBe(200)
  const line = await until(() => gw.accessLog().find((l) => l.path === '/logged/77'), Boolean, 2_000, 'the access-log line')
  expect(line).toMatchObject({ order: '77', seen_status: 200, status: 200 })
})

test('a response script replaces the body: its length on the wire and in the access log', async () => {
  const { gw } = await start({
    'main.policy': `upstream up { target ${up.url} }\nmatch GET /masked { script response "scripts/mask.ts"; proxy up }\n`,
    'scripts/mask.ts':
      "export default async (ctx) => {\n  const echo = await ctx.response.json()\n  ctx.response.setBody({ path: echo.path, ip: echo.headers['x-real-ip'].replace(/\\d+$/, 'x') })\n}\n",
  })
  const res = await gw.fetch('/masked')
  const text = await res.text()
  expect(JSON.parse(text)).toEqual({ path: '/masked', ip: '127.0.0.x' })
  expect(res.headers.get('content-length')).toBe(String(text.length))
  const line = await until(() => gw.accessLog().find((l) => l.path === '/masked'), Boolean, 2_000, 'the access-log line')
  expect(line).toMatchObject({ status: 200, bytes_out: text.length })
})

test('with --redis, two gateways share a route’s values', async () => {
  const files = {
    'main.policy': 'match GET /count { script access "scripts/count.ts"; respond 204 }\n',
    'scripts/count.ts':
      "export default async (ctx) => {\n  const n = ((await ctx.kv.get('n')) ?? 0) + 1\n  await ctx.kv.set('n', n, { ttlMs: 60000 })\n  return ctx.respond(200, { n })\n}\n",
  }
  const args = ['--redis', REDIS, '--redis-prefix', PREFIX]
  const a = await start(files, args)
  const b = await start(files, args)
  const n = async (gw: RunningGateway) => ((await (await gw.fetch('/count')).json()) as { n: number }).n
  expect([await n(a.gw), await n(b.gw), await n(a.gw)]).toEqual([1, 2, 3])
})
