// A statement inside a route or defaults block → the directive it names, read.
import { directives, findDirective, notYetAvailable } from '../directives/index.ts'
import type { Place } from '../directives/define.ts'
import { isDeclarationKeyword, type Statement } from '../policy/ast.ts'
import { ArgCursor } from '../policy/cursor.ts'
import { didYouMean, type DiagnosticBag, type Note } from '../policy/diagnostics.ts'
import { joinSpans } from '../policy/source.ts'
import { allBlocks } from './blocks.ts'
import type { DirectiveUse } from './check-program.ts'
import { resolveWhen, WHEN } from './conditions.ts'

// A `when` block gives the (guarded) uses inside it; any other statement at most one use.
export function resolveStatement(st: Statement, place: Place, bag: DiagnosticBag): DirectiveUse | DirectiveUse[] | undefined {
  const words = st.words.filter((w, i) => w.kind === 'word' && st.words.slice(0, i).every((p) => p.kind === 'word')).map((w) => w.text)
  const head = st.words[0]!
  if (head.text === WHEN) return resolveWhen(st, place, bag, resolveStatement)
  const found = findDirective(words)
  if (!found) {
    const phrase = words.slice(0, 3)
    const planned = notYetAvailable.find((n) => phrase.join(' ').startsWith(n) || n === phrase.slice(0, n.split(' ').length).join(' '))
    if (planned) {
      const span = joinSpans(head.span, st.words[planned.split(' ').length - 1]!.span)
      return bag.error('not-available', `'${planned}' is part of the policy language but not available in this version of Portcullis`, span)
    }
    if (isDeclarationKeyword(head.text)) {
      return bag.error('wrong-place', `'${head.text}' is a top-level declaration; it cannot be inside a block`, head.span, {
        message: "if it should be top-level, a '}' is missing above",
      })
    }
    const block = allBlocks.find((b) => b.fields.some((f) => f.name.split(' ')[0] === head.text))
    if (block && !directives.some((d) => d.name.split(' ')[0] === head.text)) {
      return bag.error(
        'wrong-place',
        `'${head.text}' belongs in ${block.kind === 'session' ? 'the session block' : `an ${block.kind} block`}, not in a ${place === 'route' ? 'route' : 'defaults block'}`,
        head.span,
      )
    }
    const names = directives.map((d) => d.name)
    const guess =
      didYouMean(words.slice(0, 2).join(' '), names) ??
      didYouMean(
        head.text,
        names.map((n) => n.split(' ')[0]!),
      )
    const family = names.filter((n) => n.split(' ')[0] === head.text)
    const note = guess ? `did you mean '${guess}'?` : family.length ? `'${head.text}' goes with: ${family.join(', ')}` : undefined
    const at = family.length && words.length > 1 ? joinSpans(head.span, st.words[1]!.span) : head.span
    return bag.error(
      'unknown-directive',
      `unknown directive '${family.length ? words.slice(0, 2).join(' ') : head.text}'`,
      at,
      ...(note ? [{ message: note }] : []),
    )
  }
  const { def, length } = found
  const nameSpan = joinSpans(head.span, st.words[length - 1]!.span)
  if (!def.places.includes(place)) {
    const where = def.places.includes('route') ? 'a route (match block)' : def.places.join(' or ')
    return bag.error(
      'wrong-place',
      `'${def.name}' cannot be used in ${place === 'defaults' ? 'defaults' : 'a route'}; it belongs in ${where}`,
      nameSpan,
    )
  }
  if (st.block) bag.error('syntax', `'${def.name}' takes no block`, st.span, ...jsonBody(st))
  const cfg = def.read(new ArgCursor(st, bag, def.usage, def.name, length))
  return cfg === undefined ? undefined : { def, cfg, span: nameSpan, statement: st.span, fromDefaults: place === 'defaults' }
}

// `respond 200 json {"ok":true}`: JSON written bare reads as a block; it goes in a string.
function jsonBody(st: Statement): Note[] {
  const b = st.blockSpan
  const text = b && b.file.text.slice(b.offset, b.offset + b.length)
  if (!text || !/^\{\s*("|\})/.test(text) || !text.endsWith('}')) return []
  return [{ message: `JSON is written as a string: ${JSON.stringify(text.replace(/\s*\n\s*/g, ' '))}` }]
}
