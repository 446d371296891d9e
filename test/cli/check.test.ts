// `gateway check DIR|FILE` and `check --json`: a single .policy file is checked as the program it
// forms alone (with what it imports), under the same rules on links and imports as a directory.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { mkdtempSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { policyDir, removeDir, runCli, writePolicies } from '../helpers/gateway.ts'
import { expectUsageError } from '../helpers/cli.ts'

// Each test runs the CLI, some several times: a process start is up to a few seconds on a busy machine.
setDefaultTimeout(20_000)

let dir: string
let base: string

const UPSTREAM = 'upstream api { target http://127.0.0.1:9 }\n'

beforeAll(() => {
  dir = policyDir({
    'up.policy': UPSTREAM,
    'routes.policy': 'match GET /a { proxy api }\nmatch GET /b { respond 200 }\n',
    'alone.policy': 'match GET /alone { respond 200 text "alone" }\n',
    'with-import.policy': 'import "up.policy"\nmatch GET /c { proxy api }\n',
  })
  // A scratch area: `outside/` (not policies) beside `policies/`.
  base = mkdtempSync(join(tmpdir(), 'portcullis-check-file-'))
  writePolicies(join(base, 'outside'), { 'secret.policy': 'match GET /secret { respond 200 }\n' })
  writePolicies(join(base, 'policies'), {
    'shared.policy': UPSTREAM,
    'sub/escapes.policy': 'import "../shared.policy"\nmatch GET /e { proxy api }\n',
    '.releases/v2.policy': 'match GET /v2 { respond 200 }\n',
  })
  symlinkSync(join(base, 'outside/secret.policy'), join(base, 'policies/evil.policy'))
  symlinkSync('.releases/v2.policy', join(base, 'policies/current.policy'))
})
afterAll(() => {
  removeDir(dir)
  removeDir(base)
})

describe('check FILE', () => {
  test('a file that stands alone: ok, its routes counted', async () => {
    const file = join(dir, 'alone.policy')
    const r = await runCli(['check', file])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(`${file}: ok, 1 route\n`)
  })

  test('a file is checked on its own: what other files of its directory declare is unknown', async () => {
    expect((await runCli(['check', dir])).code).toBe(0)
    const file = join(dir, 'routes.policy')
    const r = await runCli(['check', file])
    expect(r.code).toBe(1)
    expect(r.stdout).toBe('')
    expect(r.stderr).toContain(`${file}:1:22: error: unknown upstream 'api'`)
    expect(r.stderr).toEndWith('1 error\n')
  })

  test('what it imports is loaded with it', async () => {
    const r = await runCli(['check', join(dir, 'with-import.policy')])
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe(`${join(dir, 'with-import.policy')}: ok, 1 route\n`)
  })

  test("an import out of the file's directory is refused, as for a directory", async () => {
    const file = join(base, 'policies/sub/escapes.policy')
    const r = await runCli(['check', file])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain(
      `${file}:1:8: error: cannot import "../shared.policy": ${join(base, 'policies/shared.policy')} is outside the policy directory ${join(base, 'policies/sub')}`,
    )
    // Checked with its directory, the import stays inside.
    expect((await runCli(['check', join(base, 'policies')])).stderr).not.toContain('escapes.policy')
  })

  test('a file that is a link pointing outside its directory is not loaded: a diagnostic, exit 1', async () => {
    const link = join(base, 'policies/evil.policy')
    const r = await runCli(['check', link])
    expect(r.code).toBe(1)
    expect(r.stdout).toBe('')
    expect(r.stderr).toContain(`${link}:1:1: error: ${link} links to ${join(base, 'outside/secret.policy')}, outside the policy directory`)
    expect(r.stderr).toContain('it is not loaded')
    expect(r.stderr).toEndWith('1 error\n')
  })

  test('a file that is a link inside its directory is checked', async () => {
    const r = await runCli(['check', join(base, 'policies/current.policy')])
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe(`${join(base, 'policies/current.policy')}: ok, 1 route\n`)
  })

  test('a relative path from the working directory works', async () => {
    const r = await runCli(['check', 'policies/health.policy'])
    // The example's health file uses an upstream declared elsewhere: checked alone, that is an error.
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/^policies\/health\.policy:\d+:\d+: error: unknown upstream 'orders'/m)
  })

  test('a path that is no .policy file or does not exist: one line, exit 2', async () => {
    expectUsageError(await runCli(['check', join(dir, 'missing.policy')]), /cannot read policies at .*missing\.policy: no such file or directory/)
    expectUsageError(await runCli(['check', 'README.md']), /cannot read policies at README\.md: not a \.policy file or a directory/)
    expectUsageError(await runCli(['routes', 'package.json']), /package\.json: not a \.policy file/)
    expectUsageError(await runCli(['check', '--json', '/nonexistent/dir']), /\/nonexistent\/dir/)
  })

  test('the gateway serves a directory only: --policies FILE is one line, exit 2', async () => {
    const file = join(dir, 'alone.policy')
    expectUsageError(
      await runCli(['--policies', file, '--host', '127.0.0.1', '--port', '0', '--admin-port', '0']),
      /--policies: .* is not a directory/,
    )
    expectUsageError(await runCli(['--port', '0', '--admin-port', '0'], { GATEWAY_POLICIES: file }), /is not a directory/)
  })
})

interface Report {
  ok: boolean
  routes: number | null
  diagnostics: { file: string | null; line: number | null; col: number | null; severity: string; code: string; message: string; notes?: unknown[] }[]
}

describe('check --json', () => {
  test('a clean program: ok, the number of routes, no diagnostics; exit 0', async () => {
    const r = await runCli(['check', '--json', dir])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout)).toEqual({ ok: true, routes: 4, diagnostics: [] })
    const one = await runCli(['check', join(dir, 'alone.policy'), '--json'])
    expect(JSON.parse(one.stdout)).toEqual({ ok: true, routes: 1, diagnostics: [] })
  })

  test('errors: every diagnostic with its place, severity and notes, on stdout; exit 1', async () => {
    const bad = policyDir({
      'a.policy': `${UPSTREAM}match GET /x { proxy nowhere }\n`,
      'b.policy': `\n${UPSTREAM}`,
    })
    try {
      const r = await runCli(['check', '--json', bad])
      expect(r.code).toBe(1)
      expect(r.stderr).toBe('')
      const report = JSON.parse(r.stdout) as Report
      expect(report.ok).toBe(false)
      expect(report.routes).toBeNull()
      expect(report.diagnostics).toHaveLength(2)
      const [unknown, duplicate] = report.diagnostics
      expect(unknown).toMatchObject({
        file: join(bad, 'a.policy'),
        line: 2,
        col: 22,
        severity: 'error',
        code: 'unknown-upstream',
        message: "unknown upstream 'nowhere'",
      })
      // A note that points somewhere has its place; the text output says the same.
      expect(duplicate).toMatchObject({ file: join(bad, 'b.policy'), line: 2, col: 10, severity: 'error', code: 'duplicate-name' })
      expect(duplicate!.notes).toEqual([{ file: join(bad, 'a.policy'), line: 1, col: 10, message: 'first declared here' }])
      const text = await runCli(['check', bad])
      expect(text.code).toBe(1)
      expect(text.stderr).toContain(`${join(bad, 'b.policy')}:2:10: error: ${duplicate!.message}`)
      expect(text.stderr).toContain(`${join(bad, 'a.policy')}:1:10: note: first declared here`)
    } finally {
      removeDir(bad)
    }
  })

  test('a diagnostic without notes has no notes field; a file alone reports like a directory', async () => {
    const r = await runCli(['check', '--json', join(base, 'policies/evil.policy')])
    expect(r.code).toBe(1)
    const report = JSON.parse(r.stdout) as Report
    expect(report.diagnostics).toEqual([
      {
        file: join(base, 'policies/evil.policy'),
        line: 1,
        col: 1,
        severity: 'error',
        code: 'outside-policies',
        message: `${join(base, 'policies/evil.policy')} links to ${join(base, 'outside/secret.policy')}, outside the policy directory ${join(base, 'policies')}; it is not loaded`,
      },
    ])
  })
})
