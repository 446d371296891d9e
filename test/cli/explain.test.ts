// `gateway explain DIR "METHOD /path"`: the route a request takes, what each directive decided
// and the answer, offline: the policies' upstreams are real servers here, and must hear nothing.
import { afterAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { writeFileSync } from 'node:fs'
import { BUN, ROOT, policyDir, removeDir, startRecordingUpstream } from '../helpers/gateway.ts'
import type { Echo } from '../helpers/http.ts'
import { main } from '../../src/cli/explain.ts'

// Real upstreams the policies name: explain must not contact them.
const heard: Echo[] = []
const orders = startRecordingUpstream(heard)
const inline = startRecordingUpstream(heard)
const KEY = 'k-partner-a-0123'

const dir = policyDir({
  'main.policy': `upstream orders { target ${orders.url}/v2 }
app partner_a {
  key "ak_partner_a"
  api-key env PA_KEY
}
match GET /orders/{id} {
  require key
  allow ip 127.0.0.1, 10.0.0.0/8
  throttle 2/min per app
  set header X-Caller = app.name
  proxy orders
}
match POST /upload { proxy ${inline.url}/in }
`,
})
const broken = policyDir({ 'bad.policy': 'match GTE /x { respond 200 }\n' })
const bodyFile = join(dir, 'body.json')
writeFileSync(bodyFile, '{"n":1}')

afterAll(() => {
  orders.stop()
  inline.stop()
  removeDir(dir)
  removeDir(broken)
})

async function explain(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn([BUN, join(ROOT, 'src/cli/explain.ts'), ...args], {
    cwd: ROOT,
    stdout: 'pipe',
    stderr: 'pipe',
    stdin: 'ignore',
    env: { ...process.env, PA_KEY: KEY },
  })
  const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000)
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  clearTimeout(timer)
  return { code, stdout, stderr }
}

const lineWith = (text: string, part: string) => text.split('\n').find((l) => l.includes(part)) ?? ''
const policy = join(dir, 'main.policy')

describe('gateway explain', () => {
  test('a 401 names require key and its file:line', async () => {
    const r = await explain(dir, 'GET /orders/1')
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const lines = r.stdout.trimEnd().split('\n')
    expect(lines[0]).toBe('GET /orders/1')
    expect(lines[1]).toStartWith('route GET /orders/{id}  (')
    expect(lineWith(r.stdout, 'require key')).toMatch(/^  ✗ refused +require key +\S*main\.policy:7$/)
    expect(r.stdout).toContain('401 unauthenticated:')
    expect(lineWith(r.stdout, 'proxy orders')).toMatch(/not reached/)
    expect(lines.at(-1)).toBe('answer 401 unauthenticated')
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(100)
  })

  test('a 403 names allow ip (--ip)', async () => {
    const r = await explain(dir, 'GET /orders/1', '-H', `X-Api-Key: ${KEY}`, '--ip', '192.0.2.9')
    expect(r.code).toBe(0)
    expect(lineWith(r.stdout, 'require key')).toMatch(/✓ passed/)
    expect(lineWith(r.stdout, 'allow ip')).toMatch(/^  ✗ refused +allow ip +\S*main\.policy:8$/)
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('answer 403 forbidden')
  })

  test('a 429 names throttle: --repeat sends the request N times and explains the last', async () => {
    const r = await explain(dir, 'GET /orders/1', '-H', `X-Api-Key: ${KEY}`, '--repeat', '3')
    expect(r.code).toBe(0)
    expect(r.stdout.split('\n')[0]).toBe('request 3 of 3 (the 2 earlier ones: 2× 200)')
    expect(lineWith(r.stdout, 'throttle 2/60s per app')).toMatch(/^  ✗ refused +throttle 2\/60s per app +\S*main\.policy:9$/)
    expect(r.stdout).toContain('429 rate_limited:')
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('answer 429 rate_limited')
  })

  test('a pass: the upstream is a local mock, and the output shows what it received', async () => {
    const before = heard.length
    const r = await explain(dir, 'GET /orders/1?x=1', '-H', `X-Api-Key: ${KEY}`)
    expect(r.code).toBe(0)
    for (const step of ['require key', 'allow ip', 'throttle', 'set header']) expect(lineWith(r.stdout, step)).toContain('✓ passed')
    expect(lineWith(r.stdout, 'proxy orders')).toContain('→ answered')
    // Named by the real target, which heard nothing.
    expect(r.stdout).toContain(`proxied to orders ${orders.url}/v2/orders/1?x=1 → 200`)
    expect(r.stdout).toContain(`upstream orders ${orders.url} received GET /v2/orders/1?x=1`)
    expect(r.stdout).toContain('  x-caller: partner_a')
    expect(r.stdout).toContain(`  host: ${new URL(orders.url).host}`)
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('answer 200')
    expect(heard.length).toBe(before)
  })

  test('--as APP presents the app’s credential', async () => {
    const r = await explain(dir, 'GET /orders/2', '--as', 'partner_a')
    expect(r.stderr).toBe('')
    expect(lineWith(r.stdout, 'require key')).toContain('✓ passed')
    expect(r.stdout).toContain('caller: app partner_a')
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('answer 200')
    const unknown = await explain(dir, 'GET /orders/2', '--as', 'nobody')
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toBe("gateway explain: no app 'nobody' in the policies (apps: partner_a)\n")
  })

  test('--json: the trace, what the mock upstream received, and the answer; --body @file', async () => {
    const before = heard.length
    const r = await explain(dir, 'POST /upload', '--body', `@${bodyFile}`, '-H', 'Content-Type: application/json', '--json')
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out.trace.route).toEqual({ id: 'POST /upload', location: expect.stringMatching(new RegExp(`^${policy}:13:\\d+$`)) })
    expect(out.trace.steps).toEqual([
      {
        stage: 'proxy',
        directive: `proxy ${inline.url}/in`,
        at: `${policy}:13`,
        outcome: 'answered',
        status: 200,
        detail: `proxied to ${inline.url}/in/upload → 200`,
      },
    ])
    expect(out.trace.forwarded).toHaveLength(1)
    expect(out.trace.forwarded[0]).toMatchObject({ upstream: inline.url, method: 'POST', target: '/in/upload', body: '{"n":1}' })
    expect(out.answer).toMatchObject({ status: 200, body: '{}' })
    expect(heard.length).toBe(before)
  })

  test('no route: says why', async () => {
    const r = await explain(dir, 'DELETE /orders/1')
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('no route: DELETE is not allowed here (allowed: GET)')
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('answer 405 method_not_allowed')
  })

  test('policy errors: rendered like gateway check, exit 1', async () => {
    const r = await explain(broken, 'GET /x')
    expect(r.code).toBe(1)
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(/bad\.policy:1:7: error: /)
  })

  test('usage errors: one line on stderr, exit 2', async () => {
    const cases: [string[], RegExp][] = [
      [[dir], /^gateway explain: expected DIR and "METHOD \/path"/],
      [[dir, 'GET'], /is not a request line/],
      [[dir, 'GET orders'], /must start with \//],
      [[dir, 'GET /x', '-H', 'nocolon'], /is not a header like "Name: value"/],
      [[dir, 'GET /x', '--ip', 'nope'], /--ip 'nope' is not an IP address/],
      [[dir, 'GET /x', '--repeat', '0'], /--repeat takes a whole number/],
      [[dir, 'GET /x', '--body', '@/no/such/file'], /cannot read --body file/],
      [[dir, 'GET /x', '--frobnicate'], /^gateway explain: Unknown option '--frobnicate'$/],
      [[join(dir, 'missing'), 'GET /x'], /missing/],
    ]
    const runs = await Promise.all(cases.map(([args]) => explain(...args)))
    for (const [i, [args, message]] of cases.entries()) {
      const r = runs[i]!
      expect({ args, code: r.code, lines: r.stderr.trimEnd().split('\n').length }).toEqual({ args, code: 2, lines: 1 })
      expect(r.stderr.trimEnd()).toMatch(message)
      expect(r.stdout).toBe('')
    }
  }, 20_000)

  test('main() returns the exit code in process', async () => {
    expect(await main(['--help'])).toBe(0)
    expect(await main([dir, 'GET /orders/1', '--repeat', 'many'])).toBe(2)
  })
})
