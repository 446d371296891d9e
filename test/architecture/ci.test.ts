// .ci/run: the typecheck runs before the tests, a type error fails CI, and the last line
// stays the tally `N passed, M failed`. Run here on a copy with stand-ins for npm, npx,
// apt-get and chromium that record their calls, so no install, typecheck or test suite
// really runs.
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { removeDir, ROOT } from '../helpers/gateway.ts'

let base: string
let redisStandIn: { stop(closeActive?: boolean): void } | null = null

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'portcullis-ci-'))
  mkdirSync(join(base, '.ci'))
  copyFileSync(join(ROOT, '.ci/run'), join(base, '.ci/run'))
  mkdirSync(join(base, 'bin'))
  const script = (name: string, body: string) => {
    writeFileSync(join(base, 'bin', name), `#!/usr/bin/env bash\n${body}\n`)
    chmodSync(join(base, 'bin', name), 0o755)
  }
  script('npm', 'echo "npm $*" >> "$CI_CALLS"')
  // The script installs chromium with apt-get when none is found: found here (a stand-in), and
  // apt-get only records, so a run of this test never installs anything.
  script('chromium', 'exit 0')
  script('apt-get', 'echo "apt-get $*" >> "$CI_CALLS"')
  script(
    'npx',
    `echo "npx $*" >> "$CI_CALLS"
case "$1" in
  tsc) if [ "$FAKE_TSC" = fail ]; then echo "src/x.ts(1,7): error TS2322: Type 'string' is not assignable to type 'number'."; exit 2; fi ;;
  bun) printf ' %s pass\\n %s fail\\nRan tests\\n' "$FAKE_PASS" "$FAKE_FAIL"; [ "$FAKE_FAIL" = 0 ] ;;
esac`,
  )
  // The script starts Redis when nothing answers on 6379; give it something to find.
  const open = await Bun.connect({ hostname: '127.0.0.1', port: 6379, socket: { data() {} } }).then(
    (s) => (s.end(), true),
    () => false,
  )
  if (!open) redisStandIn = Bun.listen({ hostname: '127.0.0.1', port: 6379, socket: { data() {} } })
})
afterAll(() => {
  redisStandIn?.stop(true)
  removeDir(base)
})

async function ci(env: { FAKE_TSC: 'ok' | 'fail'; FAKE_PASS: number; FAKE_FAIL: number }) {
  const calls = join(base, `calls-${crypto.randomUUID()}`)
  writeFileSync(calls, '')
  const proc = Bun.spawn(['bash', join(base, '.ci/run')], {
    stdout: 'pipe',
    stderr: 'pipe',
    env: {
      ...process.env,
      PATH: `${join(base, 'bin')}:${process.env.PATH}`,
      CI_CALLS: calls,
      ...env,
      FAKE_PASS: String(env.FAKE_PASS),
      FAKE_FAIL: String(env.FAKE_FAIL),
    },
  })
  const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000)
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited])
  clearTimeout(timer)
  const lines = out.trimEnd().split('\n')
  return { code, out, last: lines.at(-1), calls: readFileSync(calls, 'utf8').trim().split('\n') }
}

test('the typecheck runs before the tests', async () => {
  const r = await ci({ FAKE_TSC: 'ok', FAKE_PASS: 7, FAKE_FAIL: 0 })
  expect(r.calls.filter((c) => c.startsWith('npx'))).toEqual(['npx tsc --noEmit -p .', 'npx bun test --parallel'])
  expect(r.calls.filter((c) => c.startsWith('apt-get'))).toEqual([])
  expect(r.last).toBe('7 passed, 0 failed')
  expect(r.code).toBe(0)
})

test('a type error fails CI and counts as one failed; the tally stays the last line', async () => {
  const r = await ci({ FAKE_TSC: 'fail', FAKE_PASS: 7, FAKE_FAIL: 0 })
  expect(r.out).toContain('error TS2322')
  expect(r.last).toBe('7 passed, 1 failed')
  expect(r.code).not.toBe(0)
})

test('a type error adds to failing tests', async () => {
  const r = await ci({ FAKE_TSC: 'fail', FAKE_PASS: 5, FAKE_FAIL: 2 })
  expect(r.last).toBe('5 passed, 3 failed')
  expect(r.code).not.toBe(0)
})

test("CI runs the README's test command", () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
  const command = /Run the tests[^\n]*\n\n```sh\n(.*)\n```/.exec(readme)?.[1]
  expect(command).toBe('npm install && npx bun test --parallel')
  const run = readFileSync(join(ROOT, '.ci/run'), 'utf8')
  expect(run).toContain('npm install --no-audit --no-fund')
  expect(run).toContain('npx bun test --parallel 2>&1')
})
