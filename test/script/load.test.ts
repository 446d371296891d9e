// Loading script modules (src/script/load.ts): a new version of a script, or of a module it
// imports, is evaluated again; an unchanged one is not; failures say what and where.
import { afterAll, describe, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadScript, type LoadResult } from '../../src/script/load.ts'
import { policyDir, removeDir } from '../helpers/gateway.ts'

const dir = policyDir({})
afterAll(() => removeDir(dir))

const write = (name: string, text: string) => writeFileSync(join(dir, name), text)
const call = (r: LoadResult) => {
  if (!r.ok) throw new Error(`not loaded: ${r.problem.message}`)
  return (r.fn as () => unknown)()
}
const problem = (r: LoadResult) => {
  if (r.ok) throw new Error('loaded')
  return r.problem
}

describe('versions', () => {
  test('an edited script is evaluated again; an unchanged one keeps its module (and its state)', () => {
    write('counter.ts', 'let n = 0\nexport default () => `one:${++n}`\n')
    const first = loadScript(join(dir, 'counter.ts'))
    expect(call(first)).toBe('one:1')
    const again = loadScript(join(dir, 'counter.ts'))
    expect(again.ok && first.ok && again.fn === first.fn).toBe(true)
    expect(call(again)).toBe('one:2')
    write('counter.ts', 'let n = 0\nexport default () => `two:${++n}`\n')
    const edited = loadScript(join(dir, 'counter.ts'))
    expect(call(edited)).toBe('two:1')
    expect(call(first)).toBe('one:3') // the old module lives on for the program that holds it
  })

  test('an edited module the script imports is evaluated again, with the script', () => {
    write('helper.ts', "export const word = 'alpha'\n")
    write('uses-helper.ts', "import { word } from './helper.ts'\nexport default () => word\n")
    const first = loadScript(join(dir, 'uses-helper.ts'))
    expect(call(first)).toBe('alpha')
    expect(first.files).toEqual([join(dir, 'uses-helper.ts'), join(dir, 'helper.ts')])
    write('helper.ts', "export const word = 'beta'\n")
    expect(call(loadScript(join(dir, 'uses-helper.ts')))).toBe('beta')
  })

  test('two scripts importing one module both see its new version', () => {
    write('shared.ts', 'export const v = 1\n')
    write('s1.ts', "import { v } from './shared.ts'\nexport default () => `s1:${v}`\n")
    write('s2.ts', "import { v } from './shared'\nexport default () => `s2:${v}`\n")
    expect([call(loadScript(join(dir, 's1.ts'))), call(loadScript(join(dir, 's2.ts')))]).toEqual(['s1:1', 's2:1'])
    write('shared.ts', 'export const v = 2\n')
    expect([call(loadScript(join(dir, 's1.ts'))), call(loadScript(join(dir, 's2.ts')))]).toEqual(['s1:2', 's2:2'])
  })

  test('a module that failed to load loads once fixed', () => {
    write('dep-broken.ts', 'export const v = (\n')
    write('uses-broken.ts', "import { v } from './dep-broken.ts'\nexport default () => v\n")
    expect(problem(loadScript(join(dir, 'uses-broken.ts'))).code).toBe('script-load')
    write('dep-broken.ts', "export const v = 'fixed'\n")
    expect(call(loadScript(join(dir, 'uses-broken.ts')))).toBe('fixed')
  })

  test('module.exports = function works too', () => {
    write('cjs.cjs', 'module.exports = function () { return "cjs" }\n')
    expect(call(loadScript(join(dir, 'cjs.cjs')))).toBe('cjs')
  })
})

describe('problems', () => {
  test('a missing file', () => {
    const p = problem(loadScript(join(dir, 'nope.ts')))
    expect(p).toEqual({ code: 'missing-file', message: 'does not exist' })
  })

  test('a syntax error: the message and its line and column', () => {
    write('syntax.ts', 'const a = 1\nexport default function (ctx) {\n  return (\n}\n')
    const p = problem(loadScript(join(dir, 'syntax.ts')))
    expect(p.code).toBe('script-load')
    expect(p.message).toBe('Unexpected }')
    expect(p.at).toMatchObject({ file: join(dir, 'syntax.ts'), line: 4, col: 1 })
  })

  test('a missing import names the module, without the version query', () => {
    write('missing-import.ts', "import { x } from './not-there.ts'\nexport default () => x\n")
    const p = problem(loadScript(join(dir, 'missing-import.ts')))
    expect(p.message).toBe(`Cannot find module './not-there.ts' imported from ${join(dir, 'missing-import.ts')}`)
  })

  test('a missing package', () => {
    write('missing-package.ts', "import x from 'no-such-package-portcullis'\nexport default () => x\n")
    expect(problem(loadScript(join(dir, 'missing-package.ts'))).message).toContain("Cannot find package 'no-such-package-portcullis'")
  })

  test('a throw while the module is evaluated, with its position', () => {
    write('throws.ts', "const a = 1\nthrow new Error('not configured')\nexport default () => a\n")
    const p = problem(loadScript(join(dir, 'throws.ts')))
    expect(p.message).toBe('not configured')
    expect(p.at).toMatchObject({ line: 2, col: 11 }) // where the Error is made
  })

  test('top-level await is refused with a reason', () => {
    write('tla.ts', 'await Bun.sleep(1)\nexport default () => 1\n')
    expect(problem(loadScript(join(dir, 'tla.ts'))).message).toContain('top-level await')
  })

  test.each([
    ['no default export', 'export const x = 1\n', 'it has none'],
    ['a string', "export default 'hello'\n", 'it is a string'],
    ['an object', 'export default { run() {} }\n', 'it is an object'],
  ])('a default export that is not a function: %s', (_name, text, says) => {
    write('export.ts', text)
    const p = problem(loadScript(join(dir, 'export.ts')))
    expect(p.code).toBe('script-export')
    expect(p.message).toContain(says)
  })
})
