// House rules that keep the seams honest, checked by reading the tree.
import { describe, expect, test } from 'bun:test'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { directives } from '../../src/directives/index.ts'
import { STAGES } from '../../src/runtime/context.ts'
import { ROOT } from '../helpers/gateway.ts'

function filesUnder(dir: string, ext: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(ext))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)))
}

function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8')
  return [...text.matchAll(/^\s*(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]!)
}

// Relative imports of a file, as repository paths (`src/policy/ast.ts`).
function importedPaths(file: string): string[] {
  return importsOf(file)
    .filter((i) => i.startsWith('.'))
    .map((i) => relative(ROOT, join(ROOT, dirname(file), i)))
}

describe('import rule', () => {
  // The front end flows one way: policy/ → check/ → compile/. A lower layer never reaches up.
  test.each([
    ['src/check', ['src/compile/', 'src/server/', 'src/cli/']],
    ['src/policy', ['src/check/', 'src/compile/', 'src/directives/', 'src/server/', 'src/cli/']],
    ['src/directives', ['src/check/', 'src/compile/', 'src/server/', 'src/cli/']],
  ] as const)('%s never imports %p', (dir, above) => {
    const offenders = filesUnder(dir, '.ts').flatMap((f) =>
      importedPaths(f)
        .filter((p) => above.some((a) => p.startsWith(a)))
        .map((p) => `${f} imports ${p}`),
    )
    expect(offenders).toEqual([])
  })

  test.each(['src/runtime', 'src/store', 'src/script'])('%s never imports grammar/, policy/ or check/', (dir) => {
    const offenders = filesUnder(dir, '.ts').flatMap((f) =>
      importsOf(f)
        .filter((i) => /(^|\/)(grammar|policy|check)\//.test(i) || i === 'chevrotain')
        .map((i) => `${f} imports ${i}`),
    )
    expect(offenders).toEqual([])
  })

  test('the server and CLI reach the front end only through buildProgram', () => {
    const offenders = [...filesUnder('src/server', '.ts'), ...filesUnder('src/cli', '.ts')].flatMap((f) =>
      importsOf(f)
        .filter((i) => /(^|\/)(grammar|check)\/|compile\/(?!build-program)/.test(i))
        .map((i) => `${f} imports ${i}`),
    )
    expect(offenders).toEqual([])
  })

  // Tracing off loads no OpenTelemetry code: only src/trace/ imports it; others import only its
  // options (the CLI loads src/trace/tracing.ts on demand); the request path knows tracing by
  // an interface of its own (RequestTrace in runtime/context.ts).
  test('OpenTelemetry stays in src/trace/, which the request path never imports', () => {
    const offenders = filesUnder('src', '.ts')
      .filter((f) => !f.startsWith('src/trace/'))
      .flatMap((f) =>
        importsOf(f)
          .filter(
            (i) => i.startsWith('@opentelemetry/') || (/(^|\/)trace\//.test(i) && (f.startsWith('src/runtime/') || !i.endsWith('trace/options.ts'))),
          )
          .map((i) => `${f} imports ${i}`),
      )
    expect(offenders).toEqual([])
  })

  test('src/trace never imports the front end, the server or the CLI', () => {
    const offenders = filesUnder('src/trace', '.ts').flatMap((f) =>
      importsOf(f)
        .filter((i) => /(^|\/)(grammar|policy|check|compile|directives|server|cli)\//.test(i))
        .map((i) => `${f} imports ${i}`),
    )
    expect(offenders).toEqual([])
  })
})

describe('directives', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
  const examples = filesUnder('policies', '.policy')
    .map((f) => readFileSync(join(ROOT, f), 'utf8'))
    .join('\n')
  const tests = filesUnder('test/e2e', '.ts')
    .map((f) => readFileSync(join(ROOT, f), 'utf8'))
    .join('\n')
  const files = readdirSync(join(ROOT, 'src/directives'))

  test.each(directives.map((d) => [d.name, d] as const))('%s has its module, an example, a test and a README row', (name, def) => {
    const used = new RegExp(`(^|[{;]|\\n)\\s*${name.replaceAll(' ', '\\s+')}(\\s|;|$)`, 'm')
    const missing = [
      files.includes(`${name.replaceAll(' ', '-')}.ts`) ? null : 'module src/directives/<name>.ts',
      used.test(examples) ? null : 'a use in policies/*.policy',
      used.test(tests) ? null : 'a use in a test/e2e policy',
      readme.includes(`| \`${def.usage.split(' ').slice(0, name.split(' ').length).join(' ')}`) ? null : 'a README table row',
    ].filter(Boolean)
    expect(missing).toEqual([])
  })

  test('names are unique and stages are known', () => {
    const names = directives.map((d) => d.name)
    expect(new Set(names).size).toBe(names.length)
    for (const d of directives) expect(STAGES).toContain(d.stage)
  })
})

// The order itself is tested in stage-order.test.ts; here: nobody copies the list.
test('the stage list is spelled out only in runtime/context.ts (STAGES)', () => {
  const list = /\baccess\b['"]?\s*[,:|]\s*(?:\[\]\s*,\s*)?['"]?rewrite\b/
  const offenders = [...filesUnder('src', '.ts'), ...filesUnder('grammar', '.ts')].filter(
    (f) => f !== 'src/runtime/context.ts' && list.test(readFileSync(join(ROOT, f), 'utf8')),
  )
  expect(offenders).toEqual([])
})

test('the declaration keywords are spelled out only in grammar/tokens.ts (DECLARATION_KEYWORDS)', () => {
  const list = /\bupstream\b['"]?\s*[,|]\s*['"]?app\b['"]?\s*[,|]\s*['"]?tier\b/
  const offenders = [...filesUnder('src', '.ts'), ...filesUnder('grammar', '.ts')].filter(
    (f) => f !== 'grammar/tokens.ts' && list.test(readFileSync(join(ROOT, f), 'utf8')),
  )
  expect(offenders).toEqual([])
})

test('no switch on directive names in shared code', () => {
  const names = directives.map((d) => d.name)
  const shared = [...filesUnder('src/compile', '.ts'), ...filesUnder('src/check', '.ts'), ...filesUnder('src/runtime', '.ts')]
  const offenders = shared.filter((f) => {
    const text = readFileSync(join(ROOT, f), 'utf8')
    return names.some((n) => text.includes(`=== '${n}'`) || text.includes(`case '${n}'`))
  })
  expect(offenders).toEqual([])
})
