// Loading stays inside the --policies directory: a link or an import that leads out of it is
// an error (whoever can write one file there must not make the gateway load any other file).
import { afterEach, describe, expect, test } from 'bun:test'
import { mkdtempSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildProgram, renderDiagnostics } from '../../src/index.ts'
import { removeDir, writePolicies } from '../helpers/gateway.ts'

const ROUTE = 'match GET /outside { respond 200 text "outside" }\n'
const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) removeDir(d)
})

// A scratch area holding `outside/` (not policies) and `policies/`.
function scratch(policies: Record<string, string>): { base: string; dir: string } {
  const base = mkdtempSync(join(tmpdir(), 'portcullis-load-'))
  dirs.push(base)
  writePolicies(join(base, 'outside'), { 'secret.policy': ROUTE, 'notes.txt': ROUTE })
  writePolicies(join(base, 'policies'), policies)
  return { base, dir: join(base, 'policies') }
}

async function rendered(dir: string): Promise<{ codes: string[]; text: string; built: boolean }> {
  const result = await buildProgram(dir)
  if (result.program) {
    void result.program.dispose()
    return { codes: [], text: '', built: true }
  }
  return { codes: result.diagnostics.map((d) => d.code), text: renderDiagnostics(result.diagnostics), built: false }
}

describe('a policy file that is a symbolic link', () => {
  test('pointing outside the directory is not loaded, and the program does not build', async () => {
    const { base, dir } = scratch({ 'main.policy': 'match GET /in { respond 200 }\n' })
    symlinkSync(join(base, 'outside/secret.policy'), join(dir, 'evil.policy'))
    const r = await rendered(dir)
    expect(r.built).toBe(false)
    expect(r.codes).toEqual(['outside-policies'])
    expect(r.text).toContain(`${join(dir, 'evil.policy')}:1:1: error: ${join(dir, 'evil.policy')} links to ${join(base, 'outside/secret.policy')}`)
    expect(r.text).toContain(`outside the policy directory ${dir}; it is not loaded`)
  })

  test('pointing outside through a relative link (../) is refused the same way', async () => {
    const { dir } = scratch({ 'main.policy': 'match GET /in { respond 200 }\n' })
    symlinkSync('../outside/secret.policy', join(dir, 'evil.policy'))
    expect((await rendered(dir)).codes).toEqual(['outside-policies'])
  })

  test('pointing inside the directory keeps working', async () => {
    const { dir } = scratch({ '.releases/v2.policy': 'match GET /v2 { respond 200 text "v2" }\n' })
    symlinkSync('.releases/v2.policy', join(dir, 'current.policy'))
    const result = await buildProgram(dir)
    expect(result.diagnostics).toBeUndefined()
    expect(result.program!.routes.map((r) => r.id)).toEqual(['GET /v2'])
    void result.program!.dispose()
  })

  test('pointing nowhere is a diagnostic, not a crash', async () => {
    const { dir } = scratch({ 'main.policy': 'match GET /in { respond 200 }\n' })
    symlinkSync('gone.policy', join(dir, 'dangling.policy'))
    expect((await rendered(dir)).codes).toEqual(['missing-file'])
  })

  test('the directory itself may be a link', async () => {
    const { base } = scratch({ 'main.policy': 'match GET /in { respond 200 }\n' })
    symlinkSync(join(base, 'policies'), join(base, 'current'))
    expect((await rendered(join(base, 'current'))).built).toBe(true)
  })
})

describe('import', () => {
  test('of a path outside the directory is refused at the import', async () => {
    const { base, dir } = scratch({ 'main.policy': 'import "../outside/secret.policy"\nmatch GET /in { respond 200 }\n' })
    const r = await rendered(dir)
    expect(r.built).toBe(false)
    expect(r.codes).toEqual(['outside-policies'])
    expect(r.text).toContain(
      `${join(dir, 'main.policy')}:1:8: error: cannot import "../outside/secret.policy": ${join(base, 'outside/secret.policy')} is outside the policy directory ${dir}`,
    )
    expect(r.text).toContain('1 | import "../outside/secret.policy"')
  })

  test('of a link inside the directory that points outside is refused', async () => {
    const { base, dir } = scratch({ 'main.policy': 'import "lib/shared.policy"\nmatch GET /in { respond 200 }\n' })
    writePolicies(dir, { 'lib/.keep': '' })
    symlinkSync(join(base, 'outside/secret.policy'), join(dir, 'lib/shared.policy'))
    // The link is found by the directory walk too; both say the same thing.
    const r = await rendered(dir)
    expect(r.built).toBe(false)
    expect(new Set(r.codes)).toEqual(new Set(['outside-policies']))
    expect(r.text).toContain(`${join(dir, 'main.policy')}:1:8: error: cannot import "lib/shared.policy"`)
  })

  test('inside the directory keeps working, also through ..', async () => {
    const { dir } = scratch({
      'routes/main.policy': 'import "../shared/up.policy"\nmatch GET /in { proxy app }\n',
      'shared/up.policy': 'upstream app { target http://127.0.0.1:9 }\n',
    })
    const r = await rendered(dir)
    expect(r.text).toBe('')
    expect(r.built).toBe(true)
  })
})
