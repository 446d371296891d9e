// `gateway routes DIR|FILE`: a compact table within 100 columns by default, `--wide` with every
// directive of every stage, `--json` in the shape of the admin API's GET /routes.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ADMIN_TOKEN, policyDir, removeDir, ROOT, runCli, startGateway, startUpstream, type Upstream } from '../helpers/gateway.ts'

// Each test runs the CLI, some several times: a process start is up to a few seconds on a busy machine.
setDefaultTimeout(20_000)

let up: Upstream
let dir: string

const LONG = '/api/v1/organisations/{org}/projects/{project}/environments/{env}/deployments/{id:int}/logs'

beforeAll(() => {
  up = startUpstream()
  dir = policyDir({
    'main.policy': `upstream stable { target ${up.url} }
upstream canary-with-a-rather-long-name { target ${up.url} }
defaults { limit body 1mb }
match GET /items/{id} { rewrite path /v2/items/{id}; set response header X-A = "1"; proxy stable }
match GET,HEAD,POST,PUT,DELETE,PATCH /everything { respond 204 }
match GET /whoami host api.example.com { respond 200 text "me" }
match GET ${LONG} {
  proxy split 50% stable, 50% canary-with-a-rather-long-name sticky header x-user-identifier
}
match GET /guarded {
  when request.header.X-Beta = "1" { proxy canary-with-a-rather-long-name }
  when request.header.X-Alpha = "1" { respond 200 text "alpha" }
  proxy stable
}
match POST,PUT /only-when {
  when request.method = "POST" { respond 201 }
  when request.method = "PUT" { respond 204 }
}
match * /retired/{rest*} { status retired }
`,
    'a/deeply/nested/directory/with-a-long-file-name-for-its-routes.policy': 'match GET /nested { respond 200 }\n',
  })
})
afterAll(() => {
  up?.stop()
  removeDir(dir)
})

// The table's lines, cut into cells at the column starts the header gives.
function cells(table: string): string[][] {
  const lines = table.trimEnd().split('\n')
  const head = lines[0]!
  const starts = ['METHOD', 'PATTERN', 'SOURCE', 'ACC RW RSP LOG', 'TERMINAL'].map((h) => head.indexOf(h))
  expect(starts.every((s, i) => s >= 0 && (i === 0 || s > starts[i - 1]!))).toBe(true)
  return lines.map((l) => starts.map((s, i) => l.slice(s, starts[i + 1]).trim()))
}

describe('routes DIR (compact)', () => {
  test('every line fits 100 columns, long cells cut with …', async () => {
    const r = await runCli(['routes', dir])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const lines = r.stdout.trimEnd().split('\n')
    expect(lines).toHaveLength(9)
    for (const line of lines) expect([...line].length).toBeLessThanOrEqual(100)
    // The widest cells did not fit whole: the pattern is cut in its middle, keeping both ends.
    const long = cells(r.stdout).find((c) => c[1]!.startsWith('/api/v1/org'))!
    expect(long[1]).toContain('…')
    expect(long[1]).toEndWith('/logs')
    expect(long[4]).toStartWith('proxy split 50%')
    expect(long[4]).toEndWith('…')
  })

  test('method, host with pattern, file:line relative to DIR, directives per stage, terminal', async () => {
    const r = await runCli(['routes', dir])
    const rows = cells(r.stdout)
    expect(rows[0]).toEqual(['METHOD', 'PATTERN', 'SOURCE', 'ACC RW RSP LOG', 'TERMINAL'])
    const byPattern = new Map(rows.slice(1).map((c) => [c[1]!, c]))
    // One access directive (the defaults' limit body), one rewrite, one response, no log.
    expect(byPattern.get('/items/{id}')).toEqual(['GET', '/items/{id}', 'main:4', '1  1   1   -', 'proxy stable'])
    expect(byPattern.get('api.example.com/whoami')).toEqual(['GET', 'api.example.com/whoami', 'main:6', '1  -   -   -', 'respond'])
    // A long method list is cut at its end.
    expect(byPattern.get('/everything')![0]).toMatch(/^GET,HEAD,.*…$/)
    // The route's own terminal, and how many `when` blocks have one (they are tried first).
    expect(byPattern.get('/guarded')![4]).toBe('proxy stable +2 when')
    // Every terminal in a `when` block: shown without their conditions.
    expect(byPattern.get('/only-when')![4]).toBe('when: respond')
    // A retired route answers from the access stage and has no terminal.
    expect(byPattern.get('/retired/{rest*}')).toEqual(['*', '/retired/{rest*}', 'main:19', '2  -   -   -', '-'])
    // A long source is cut at its start, keeping the file name and line.
    const nested = byPattern.get('/nested')!
    expect(nested[2]).toStartWith('…')
    expect(nested[2]).toEndWith('-for-its-routes:1')
  })

  test('the example policies fit 100 columns', async () => {
    const r = await runCli(['routes', 'policies'])
    expect(r.code).toBe(0)
    const lines = r.stdout.trimEnd().split('\n')
    expect(lines.length).toBeGreaterThan(40)
    expect(Math.max(...lines.map((l) => [...l].length))).toBeLessThanOrEqual(100)
    // Paths are relative to the policy directory, a subdirectory's included.
    expect(r.stdout).toMatch(/\scommon\/internal:\d+\s/)
    expect(r.stdout).toContain('localhost/whoami')
  })

  test("the README's example lines are lines of the example policies' table", async () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
    const start = readme.indexOf('`gateway routes DIR|FILE` prints one line per route')
    expect(start).toBeGreaterThan(0)
    const block = /```text\n([^`]*)```/.exec(readme.slice(start))![1]!.trimEnd().split('\n')
    expect(block[0]).toStartWith('METHOD ')
    const table = (await runCli(['routes', 'policies'])).stdout.split('\n')
    for (const line of block) expect(table).toContain(line)
  })

  test('routes FILE: one file alone, sources relative to its directory', async () => {
    const r = await runCli(['routes', join(dir, 'a/deeply/nested/directory/with-a-long-file-name-for-its-routes.policy')])
    expect(r.code).toBe(0)
    expect(cells(r.stdout).slice(1)).toEqual([['GET', '/nested', 'with-a-long-file-name-for-its-routes:1', '-  -   -   -', 'respond']])
  })

  test('a program with errors: diagnostics on stderr, exit 1', async () => {
    const bad = policyDir({ 'x.policy': 'match GET /x { proxy nowhere }\n' })
    try {
      for (const flag of [[], ['--wide'], ['--json']]) {
        const r = await runCli(['routes', ...flag, bad])
        expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 1, stdout: '' })
        expect(r.stderr).toContain(`${join(bad, 'x.policy')}:1:22: error: unknown upstream 'nowhere'`)
      }
    } finally {
      removeDir(bad)
    }
  })
})

describe('routes --wide', () => {
  test('every directive of every stage, conditions and the full source position', async () => {
    const r = await runCli(['routes', '--wide', dir])
    expect(r.code).toBe(0)
    const lines = r.stdout.trimEnd().split('\n')
    expect(lines[0]!.split(/\s{2,}/)).toEqual(['METHOD', 'HOST', 'PATTERN', 'STAGES', 'TERMINAL', 'SOURCE'])
    const items = lines.find((l) => l.includes(' /items/{id} '))!
    expect(items.split(/\s{2,}/)).toEqual([
      'GET',
      '*',
      '/items/{id}',
      'access: limit body; rewrite: rewrite path; response: set response header; log: -',
      'proxy stable',
      `${join(dir, 'main.policy')}:4:11`,
    ])
    const guarded = lines.find((l) => l.includes(' /guarded '))!
    expect(guarded).toContain(
      'proxy canary-with-a-rather-long-name (when request.header.X-Beta = "1"), respond (when request.header.X-Alpha = "1"), proxy stable',
    )
    expect(r.stdout).toContain(LONG)
    expect(r.stdout).toContain('proxy split 50% stable, 50% canary-with-a-rather-long-name sticky header x-user-identifier')
    expect(Math.max(...lines.map((l) => l.length))).toBeGreaterThan(100)
  })
  test("the stages of the golden fixture: defaults first in each stage, then the route in source order; a route's own `trace` replaces the defaults'", async () => {
    const r = await runCli(['routes', '--wide', 'test/golden/routes/stages'])
    expect(r.code).toBe(0)
    const stages = r.stdout
      .trimEnd()
      .split('\n')
      .slice(1)
      .map((l) => l.split(/\s{2,}/)[3])
    expect(stages).toEqual([
      'access: limit body, allow ip, status; rewrite: remove header, set query, rewrite path, set header; response: set response header, remove response header; log: trace sample 10%',
      'access: limit body, deny ip; rewrite: remove header, strip prefix, remove query; response: set response header; log: trace off',
    ])
  })
})

describe('routes --json', () => {
  test('the same document as the admin API GET /routes', async () => {
    const r = await runCli(['routes', '--json', dir])
    expect(r.code).toBe(0)
    expect(r.stderr).toBe('')
    const cli = JSON.parse(r.stdout) as { version: number; routes: Record<string, unknown>[] }
    expect(cli.routes).toHaveLength(8)
    expect(cli.routes.find((x) => x.pattern === '/whoami')).toEqual({
      method: 'GET',
      host: 'api.example.com',
      pattern: '/whoami',
      location: `${join(dir, 'main.policy')}:6:11`,
      stages: { access: ['limit body'], rewrite: [], proxy: ['respond'], response: [], log: [] },
      terminal: 'respond',
    })
    const gw = await startGateway(dir, ['--no-watch'])
    try {
      const res = await gw.admin('/routes', { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
      expect(res.status).toBe(200)
      const admin = (await res.json()) as { version: number; routes: unknown[] }
      expect(Object.keys(cli).sort()).toEqual(Object.keys(admin).sort())
      expect(typeof cli.version).toBe('number')
      expect(cli.routes).toEqual(admin.routes as Record<string, unknown>[])
    } finally {
      await gw.stop()
    }
  })

  test('a large table arrives whole through a pipe', async () => {
    const r = await runCli(['routes', '--json', 'policies'])
    expect(r.code).toBe(0)
    const doc = JSON.parse(r.stdout) as { routes: unknown[] }
    expect(r.stdout.length).toBeGreaterThan(16_384)
    expect(doc.routes.length).toBeGreaterThan(40)
  })
})
