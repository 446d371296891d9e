// Writes grammar/portcullis.tmLanguage.json (TextMate grammar for editors: VS Code, Sublime,
// GitHub linguist). Directive names come from the registry and declaration keywords from
// tokens.ts, so the editor knows every one.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { directives, notYetAvailable } from '../src/directives/index.ts'
import { DECLARATION_KEYWORDS } from './tokens.ts'

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/ /g, '\\s+')
const alternatives = (words: readonly string[]) =>
  [...words]
    .sort((a, b) => b.length - a.length)
    .map(escape)
    .join('|')

export function editorGrammar(): object {
  const names = [...directives.map((d) => d.name), ...notYetAvailable]
  return {
    $schema: 'https://raw.githubusercontent.com/martinring/tmlanguage/master/tmlanguage.json',
    name: 'Portcullis policy',
    scopeName: 'source.portcullis',
    fileTypes: ['policy'],
    patterns: [
      { name: 'comment.line.number-sign.portcullis', match: '#.*$' },
      {
        name: 'string.quoted.double.portcullis',
        begin: '"',
        end: '"',
        patterns: [
          { name: 'constant.character.escape.portcullis', match: '\\\\.' },
          { name: 'constant.character.escape.portcullis', match: '\\{\\{' },
          { name: 'variable.other.placeholder.portcullis', match: '\\{[A-Za-z_][A-Za-z0-9_.\\-]*\\*?\\}' },
        ],
      },
      { name: 'keyword.declaration.portcullis', match: `^\\s*(${DECLARATION_KEYWORDS.join('|')})\\b` },
      { name: 'keyword.other.directive.portcullis', match: `(?<=^|[;{])\\s*(${alternatives(names)})(?![A-Za-z0-9_\\-])` },
      // `when CONDITION { … }` and the words of a condition.
      { name: 'keyword.control.conditional.portcullis', match: '(?<=^|[;{])\\s*when(?![A-Za-z0-9_\\-])' },
      { name: 'keyword.operator.word.portcullis', match: '\\b(and|or|not|in|present|absent|matches|split|sticky)\\b' },
      { name: 'constant.other.url.portcullis', match: 'https?://[^\\s,;"#{}]+' },
      { name: 'constant.numeric.date.portcullis', match: '\\b\\d{4}-\\d{2}-\\d{2}(T[0-9:.]+(Z|[+-]\\d{2}:\\d{2}))?' },
      {
        name: 'constant.numeric.address.portcullis',
        match: '\\b\\d{1,3}(\\.\\d{1,3}){3}(/\\d{1,2})?\\b|(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(/\\d{1,3})?',
      },
      { name: 'constant.numeric.percentage.portcullis', match: '\\b\\d+(\\.\\d+)?%' },
      { name: 'constant.numeric.quantity.portcullis', match: '\\b\\d+(/(second|sec|s|minute|min|hour|hr|h|day|d)|ms|s|m|h|d|b|kb|mb|gb)?\\b' },
      { name: 'string.unquoted.path.portcullis', match: '/[^\\s;{}#",]*(\\{[^}\\s]*\\}[^\\s;{}#",]*)*' },
      { name: 'keyword.operator.portcullis', match: '!=|[=,]' },
      { name: 'variable.other.reference.portcullis', match: '\\b(param|request|app|jwt|user)\\.[A-Za-z0-9_.\\-]+' },
      { name: 'support.constant.method.portcullis', match: '\\b(GET|HEAD|POST|PUT|DELETE|PATCH|OPTIONS|TRACE|CONNECT)\\b' },
    ],
  }
}

export const EDITOR_GRAMMAR_PATH = join(import.meta.dir, 'portcullis.tmLanguage.json')

if (import.meta.main) {
  writeFileSync(EDITOR_GRAMMAR_PATH, `${JSON.stringify(editorGrammar(), null, 2)}\n`)
  console.log(`wrote ${EDITOR_GRAMMAR_PATH}`)
}
