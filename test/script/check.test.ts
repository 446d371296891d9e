// What the checker says about `script` lines: each problem at the path (or option) it is about,
// with the module's own message and, where Bun gives one, the position inside the script.
import { afterEach, expect, test } from 'bun:test'
import { buildProgram, renderDiagnostics } from '../../src/index.ts'
import { policyDir, removeDir } from '../helpers/gateway.ts'

const dirs: string[] = []
afterEach(() => dirs.splice(0).forEach(removeDir))

async function check(policy: string, scripts: Record<string, string> = {}): Promise<string> {
  const files: Record<string, string> = { 'main.policy': policy }
  for (const [name, text] of Object.entries(scripts)) files[`scripts/${name}`] = text
  const dir = policyDir(files)
  dirs.push(dir)
  const built = await buildProgram(dir)
  return built.diagnostics ? renderDiagnostics(built.diagnostics).split(`${dir}/`).join('') : 'ok'
}

const ok = 'export default () => {}\n'

test('every stage, in a route and in defaults, with its options', async () => {
  const policy = `defaults { script access "scripts/ok.ts" timeout 5ms }
match GET /a {
  script access "scripts/ok.ts"
  script rewrite "scripts/ok.ts" timeout 200ms
  script response "scripts/ok.ts" max 64kb timeout 1s
  script log "scripts/ok.ts"
  respond 204
}
`
  expect(await check(policy, { 'ok.ts': ok })).toBe('ok')
})

test('a missing script, at its path', async () => {
  expect(await check('match GET /a {\n  script access "scripts/nope.ts"\n  respond 204\n}\n')).toBe(
    [
      'main.policy:2:17: error: script "scripts/nope.ts" does not exist (looked for scripts/nope.ts)',
      '2 |   script access "scripts/nope.ts"',
      '  |                 ^^^^^^^^^^^^^^^^^',
      '1 error',
      '',
    ].join('\n'),
  )
})

test('a syntax error: the message at the path, and a note at the line and column in the script', async () => {
  const out = await check('match GET /a { script response "scripts/bad.ts"; respond 204 }\n', {
    'bad.ts': 'export default (ctx) => {\n  ctx.x(\n}\n',
  })
  expect(out).toContain('main.policy:1:32: error: script "scripts/bad.ts" does not load: Unexpected }')
  expect(out).toContain('scripts/bad.ts:3:1: note: the error is here')
})

test('a module that imports what is not there', async () => {
  const out = await check('match GET /a { script access "scripts/imp.ts"; respond 204 }\n', {
    'imp.ts': "import { x } from './gone.ts'\nexport default () => x\n",
  })
  expect(out).toContain(`main.policy:1:30: error: script "scripts/imp.ts" does not load: Cannot find module './gone.ts' imported from`)
})

test('a default export that is not a function', async () => {
  const out = await check('match GET /a { script log "scripts/val.ts"; respond 204 }\n', { 'val.ts': 'export default 42\n' })
  expect(out).toContain(
    'main.policy:1:27: error: script "scripts/val.ts": its default export must be the script\'s function (it is a number): export default function (ctx) { … }',
  )
})

test.each([
  ['script access "scripts/ok.ts" max 1mb', "1:46: error: unknown option 'max' of 'script access'; options: timeout"],
  ['script access "scripts/ok.ts" timeout 2m', "1:54: error: a script's budget is at most 1m, found 2m"],
  ['script access "scripts/ok.ts" timeout 5ms timeout 6ms', "1:58: error: 'timeout' is given twice"],
  ['script access scripts/ok.ts', '1:30: error: \'script access\' expects a "path/to/script.ts"'],
  ['script proxy "scripts/ok.ts"', "1:16: error: unknown directive 'script proxy'"],
])('%s', async (line, says) => {
  expect(await check(`match GET /a { ${line}; respond 204 }\n`, { 'ok.ts': ok })).toContain(`main.policy:${says}`)
})
