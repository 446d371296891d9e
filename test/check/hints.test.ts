// The hints a new user needs: each mistake is an error at its file:line:col with a note that
// says what to write, and writing what the note says makes `gateway check` pass. The same
// notes reach the admin API's 422 answer to POST /reload (and /readyz's rejected_reload).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { didYouMean } from '../../src/policy/diagnostics.ts'
import { ADMIN_TOKEN, policyDir, removeDir, runCli, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'

interface Case {
  name: string
  broken: string
  fixed: string
  at: string // LINE:COL of the error
  message: string
  note: string
}

const cases: Case[] = [
  {
    name: 'a misspelt method',
    broken: 'match GTE /m { respond 200 }\n',
    fixed: 'match GET /m { respond 200 }\n',
    at: '1:7',
    message: "unknown HTTP method 'GTE'",
    note: "did you mean 'GET'?",
  },
  {
    name: 'a misspelt request field in a value',
    broken: 'match GET /r1 {\n  set header X-Id = request.hedaer.x-id\n  respond 200\n}\n',
    fixed: 'match GET /r1 {\n  set header X-Id = request.header.x-id\n  respond 200\n}\n',
    at: '2:21',
    message: "unknown request field 'hedaer.x-id'",
    note: "did you mean 'request.header.x-id'?",
  },
  {
    name: 'a misspelt capture in a template',
    broken: 'match GET /r2/{id} {\n  respond 200 text "order {param.ids}"\n}\n',
    fixed: 'match GET /r2/{id} {\n  respond 200 text "order {param.id}"\n}\n',
    at: '2:27',
    message: "the route GET /r2/{id} has no capture named 'ids'",
    note: "did you mean 'param.id'?",
  },
  {
    name: 'a request field written bare',
    broken: 'match GET /r4/{id} {\n  respond 200 text "from {ip}"\n}\n',
    fixed: 'match GET /r4/{id} {\n  respond 200 text "from {request.ip}"\n}\n',
    at: '2:26',
    message: "unknown reference 'ip'",
    note: "did you mean 'request.ip'?",
  },
  {
    name: 'a misspelt root in a condition',
    broken: 'match GET /r3 {\n  when reqest.header.x-beta present { respond 200 }\n  respond 404\n}\n',
    fixed: 'match GET /r3 {\n  when request.header.x-beta present { respond 200 }\n  respond 404\n}\n',
    at: '2:8',
    message: "unknown reference 'reqest.header.x-beta'",
    note: "did you mean 'request.header.x-beta'?",
  },
  {
    name: 'a size written apart from its unit',
    broken: 'match POST /s {\n  limit body 10 mb\n  respond 200\n}\n',
    fixed: 'match POST /s {\n  limit body 10mb\n  respond 200\n}\n',
    at: '2:14',
    message: 'a size is one word: the number and its unit go together',
    note: 'write 10mb',
  },
  {
    name: 'a proxy address without its scheme',
    broken: 'match GET /p { proxy 127.0.0.1:9002 }\n',
    fixed: 'match GET /p { proxy http://127.0.0.1:9002 }\n',
    at: '1:22',
    message: "'proxy' expects an upstream name or a URL, found '127.0.0.1:9002'",
    note: 'write http://127.0.0.1:9002',
  },
  {
    name: 'an unquoted respond body',
    broken: 'match GET /b { respond 200 hello world }\n',
    fixed: 'match GET /b { respond 200 "hello world" }\n',
    at: '1:28',
    message: `'respond' expects a "body", found 'hello'`,
    note: 'quote it: "hello world"',
  },
  {
    name: 'an upstream without a name',
    broken: 'upstream {\n  target http://127.0.0.1:9001\n}\n',
    fixed: 'upstream backend {\n  target http://127.0.0.1:9001\n}\n',
    at: '1:10',
    message: "expected a name for the upstream, found '{'",
    note: 'usage: upstream NAME { target URL … }',
  },
  {
    name: 'an app without a name',
    broken: 'app {\n  key "ak_partner"\n}\n',
    fixed: 'app partner {\n  key "ak_partner"\n}\n',
    at: '1:5',
    message: "expected a name for the app, found '{'",
    note: 'usage: app NAME { key "…" … }',
  },
  {
    name: 'a sink without a name',
    broken: 'sink { file "access.log" }\n',
    fixed: 'sink local { file "access.log" }\n',
    at: '1:6',
    message: "expected a name for the sink, found '{'",
    note: 'usage: sink NAME { … }',
  },
  {
    name: 'a tier without a name',
    broken: 'tier 5/min\n',
    fixed: 'tier bronze 5/min\n',
    at: '1:6',
    message: "expected a name for the tier, found '5/min'",
    note: 'usage: tier NAME RATE [burst N]',
  },
  {
    name: 'a quoted name',
    broken: 'app "partner_b" {\n  key "ak_b"\n}\n',
    fixed: 'app partner_b {\n  key "ak_b"\n}\n',
    at: '1:5',
    message: `expected a name for the app, found '"partner_b"'`,
    note: 'names are not quoted: write app partner_b',
  },
]

const fileOf = (i: number) => `case-${String(i).padStart(2, '0')}.policy`

// `gateway check` output → one entry per error: its first line and its note lines.
function diagnostics(text: string): { head: string; notes: string[] }[] {
  const out: { head: string; notes: string[] }[] = []
  for (const line of text.split('\n')) {
    if (/: error: /.test(line)) out.push({ head: line, notes: [] })
    else if (/(^|: )note: /.test(line)) out.at(-1)?.notes.push(line.replace(/^.*?note: /, ''))
  }
  return out
}

describe('gateway check hints', () => {
  let broken: string
  let fixed: string
  let report: { head: string; notes: string[] }[]
  let brokenRun: { code: number; stdout: string; stderr: string }

  beforeAll(async () => {
    broken = policyDir(Object.fromEntries(cases.map((c, i) => [fileOf(i), c.broken])))
    fixed = policyDir(Object.fromEntries(cases.map((c, i) => [fileOf(i), c.fixed])))
    brokenRun = await runCli(['check', broken])
    report = diagnostics(brokenRun.stderr)
  })
  afterAll(() => {
    removeDir(broken)
    removeDir(fixed)
  })

  test('every mistake is one error and the check exits 1', () => {
    expect(brokenRun.code).toBe(1)
    expect(brokenRun.stderr.trimEnd().split('\n').at(-1)).toBe(`${cases.length} errors`)
    expect(report).toHaveLength(cases.length)
  })

  cases.forEach((c, i) => {
    test(`${c.name}: ${c.note}`, () => {
      const file = join(broken, fileOf(i))
      const d = report.find((r) => r.head.startsWith(`${file}:`))
      const at = `${file}:${c.at}: error: `
      expect(d?.head.slice(0, at.length)).toBe(at)
      expect(d!.head).toContain(c.message)
      expect(d!.notes[0]).toBe(c.note)
    })
  })

  test('doing what the notes say makes the program check clean', async () => {
    const { code, stdout, stderr } = await runCli(['check', fixed])
    expect(stderr).toBe('')
    expect(code).toBe(0)
    expect(stdout).toContain(': ok,')
  })
})

describe('the suggester', () => {
  test('a swap of two neighbours is one edit; far words get no suggestion', () => {
    const methods = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']
    expect(didYouMean('GTE', methods)).toBe('GET')
    expect(didYouMean('PSOT', methods)).toBe('POST')
    expect(didYouMean('hedaer', ['ip', 'header', 'query'])).toBe('header')
    expect(didYouMean('FETCH', methods)).toBeUndefined()
    expect(didYouMean('xy', ['header'])).toBeUndefined()
  })
})

describe('POST /reload answers 422 with the notes', () => {
  let up: Upstream
  let gw: RunningGateway
  let dir: string
  const good = () => `upstream orders { target ${up.url} }\nmatch GET /o { proxy orders }\n`

  beforeAll(async () => {
    up = startUpstream()
    dir = policyDir({ 'main.policy': good() })
    gw = await startGateway(dir, ['--no-watch'])
  })
  afterAll(async () => {
    await gw?.stop()
    up?.stop()
    removeDir(dir)
  })

  test('each diagnostic carries its notes (none: no field), with a place when the note points somewhere', async () => {
    const file = join(dir, 'main.policy')
    writeFileSync(
      file,
      `upstream orders { target ${up.url} }\nupstream orders { target ${up.url} }\nmatch GET /o { proxy ordrs }\nmatch GET /n { }\n`,
    )
    const res = await gw.admin('/reload', { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
    expect(res.status).toBe(422)
    const body = (await res.json()) as { diagnostics: Record<string, unknown>[] }
    expect(body.diagnostics).toEqual([
      {
        file,
        line: 2,
        col: 10,
        code: 'duplicate-name',
        message: "upstream 'orders' is declared twice",
        notes: [{ message: 'first declared here', file, line: 1, col: 10 }],
      },
      { file, line: 3, col: 22, code: 'unknown-upstream', message: "unknown upstream 'ordrs'", notes: [{ message: "did you mean 'orders'?" }] },
      { file, line: 4, col: 11, code: 'missing-terminal', message: 'the route GET /n has no terminal directive: end it with proxy or respond' },
    ])
    const ready = (await (await gw.admin('/readyz')).json()) as { rejected_reload: { diagnostics: unknown[] } }
    expect(ready.rejected_reload.diagnostics).toEqual(body.diagnostics)
    expect((await gw.fetch('/o')).status).toBe(200)
  })
})
