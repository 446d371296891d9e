// Golden fixtures, text in and text out: each folder under test/golden/check and
// test/golden/routes holds `.policy` files and `expected.txt`, the exact output of
// `gateway check` / `gateway routes` run from the repository root on that folder.
// An expected output ending in "N error(s)" is a failing check: exit 1, all on stderr.
// Anything else is a success: exit 0, all on stdout.
//
// Regenerate with `UPDATE_GOLDEN=1 bun test test/check/golden.test.ts`, then read
// every changed expected.txt by eye before committing it.
import { describe, expect, test } from 'bun:test'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT, runCli } from '../helpers/gateway.ts'

const UPDATE = process.env.UPDATE_GOLDEN === '1'
// The fixtures read this variable (check/clean); check/missing-env relies on its own being unset.
const ENV = { PORTCULLIS_GOLDEN_SECRET: 'golden-secret' }
const UNSET = 'PORTCULLIS_GOLDEN_SURELY_UNSET_VAR'

function fixtures(command: string): string[] {
  return readdirSync(join(ROOT, 'test/golden', command), { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort()
}

function policyFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.policy'))
}

test('the fixture sets are all there', () => {
  expect(process.env[UNSET]).toBeUndefined()
  const check = fixtures('check')
  for (const name of ['clean', 'unclosed-brace', 'recovery', 'unknown-directive', 'route-conflict', 'bad-date', 'missing-env']) {
    expect(check).toContain(name)
  }
  expect(check.length).toBeGreaterThanOrEqual(30)
  expect(fixtures('routes')).toEqual(['precedence', 'stages'])
})

for (const command of ['check', 'routes'] as const) {
  describe(`gateway ${command}`, () => {
    for (const name of fixtures(command)) {
      const dir = `test/golden/${command}/${name}`
      test(name, async () => {
        expect(policyFiles(dir).length).toBeGreaterThan(0)
        const { code, stdout, stderr } = await runCli([command, dir], ENV)
        const actual = code === 0 ? stdout : stderr
        const file = join(ROOT, dir, 'expected.txt')
        if (UPDATE) writeFileSync(file, actual)
        const expected = readFileSync(file, 'utf8')
        const failing = /\n\d+ errors?\n$/.test(expected)
        expect(actual).toBe(expected)
        expect(code).toBe(failing ? 1 : 0)
        expect(code === 0 ? stderr : stdout).toBe('')
      })
    }
  })
}
