// The generated grammar artefacts are committed; they must match the parser and registry.
import { expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { diagramsHtml } from '../../grammar/diagrams.ts'
import { EDITOR_GRAMMAR_PATH, editorGrammar } from '../../grammar/editor-grammar.ts'
import { DECLARATION_KEYWORDS } from '../../grammar/tokens.ts'
import { directives } from '../../src/directives/index.ts'

test('grammar/diagrams.html is up to date (bun run grammar)', () => {
  const committed = readFileSync(join(import.meta.dir, '../../grammar/diagrams.html'), 'utf8')
  expect(committed).toBe(diagramsHtml())
  expect(committed).toContain('"name": "matchDecl"')
  expect(committed).not.toContain('unpkg.com')
})

test('the editor grammar is up to date and knows every directive', () => {
  const committed = JSON.parse(readFileSync(EDITOR_GRAMMAR_PATH, 'utf8'))
  expect(committed).toEqual(JSON.parse(JSON.stringify(editorGrammar())))
  const directivePattern = committed.patterns.find((p: { name: string }) => p.name === 'keyword.other.directive.portcullis').match as string
  for (const d of directives) expect(directivePattern).toContain(d.name.replaceAll(' ', '\\s+'))
})

test('the editor grammar highlights exactly the declaration keywords', () => {
  const committed = JSON.parse(readFileSync(EDITOR_GRAMMAR_PATH, 'utf8'))
  const declPattern = committed.patterns.find((p: { name: string }) => p.name === 'keyword.declaration.portcullis').match as string
  const words = /\((.*)\)/.exec(declPattern)![1]!.split('|')
  expect(words.sort()).toEqual([...DECLARATION_KEYWORDS].sort())
})
