// The README's tour must stay true: every ```policy block is a program that checks clean,
// and the directive table is the one the registry generates.
import { expect, test } from 'bun:test'
import { cpSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { directiveTable } from '../../src/cli/directive-table.ts'
import { buildProgram, renderDiagnostics } from '../../src/index.ts'
import { policyDir, removeDir, ROOT } from '../helpers/gateway.ts'

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
const blocks = [...readme.matchAll(/```policy\n([\s\S]*?)```/g)].map((m) => m[1]!)

test('the tour has runnable examples', () => {
  expect(blocks.length).toBeGreaterThanOrEqual(5)
})

test.each(blocks.map((b, i) => [i + 1, b] as const))('tour example %d checks clean', async (_n, text) => {
  const dir = policyDir({ 'tour.policy': text })
  // The scripts an example names are the example policies' own (policies/scripts/).
  if (text.includes('"scripts/')) cpSync(join(ROOT, 'policies/scripts'), join(dir, 'scripts'), { recursive: true })
  try {
    // A reader sets the variables an example reads: give each `env NAME` a value.
    const env = Object.fromEntries([...text.matchAll(/\benv ([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => [m[1]!, `example-${m[1]}`]))
    const built = await buildProgram(dir, { env })
    expect(built.diagnostics ? renderDiagnostics(built.diagnostics) : '').toBe('')
  } finally {
    removeDir(dir)
  }
})

test('the directive table is generated from the registry', () => {
  const table = /<!-- directives:begin[^>]*-->\n([\s\S]*?)\n<!-- directives:end -->/.exec(readme)?.[1]
  expect(table).toBe(directiveTable())
})

test('the README shows the two fresh-machine commands near the top', () => {
  const top = readme.split('\n').slice(0, 30).join('\n')
  expect(top).toContain('npm install && npx bun run gateway --policies ./policies')
  expect(top).toContain('npm install && npx bun test')
  expect(readFileSync(join(ROOT, '.ci/run'), 'utf8')).toContain('npx bun test')
})
