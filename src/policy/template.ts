// Templates: `"{app.name}-{param.id}"`. A placeholder is `{` + reference + `}`;
// any other `{` is literal, and `{{` is always a literal `{`.
import { didYouMean, type DiagnosticBag, type Note } from './diagnostics.ts'
import { checkReference, type RouteInfo, type TemplateMode } from './references.ts'
import type { Span } from './source.ts'

export interface RefPart {
  ref: string // `param.id`, `request.header.X-Foo`, or a bare capture name `id`
  rest: boolean // `{name*}`
  span: Span
}
export type TemplatePart = string | RefPart

export interface Template {
  parts: TemplatePart[]
  span: Span
}

const placeholder = /^\{([A-Za-z_][A-Za-z0-9_.\-]*)(\*?)\}/

// `base` is the span of the first character of `text` inside its source, or
// undefined when offsets cannot be mapped (then every part gets `span`).
export function parseTemplate(text: string, span: Span, offsetOf: (i: number) => number): Template {
  const parts: TemplatePart[] = []
  let literal = ''
  let i = 0
  while (i < text.length) {
    if (text.startsWith('{{', i)) {
      literal += '{'
      i += 2
      continue
    }
    if (text[i] === '{') {
      const m = placeholder.exec(text.slice(i))
      if (m) {
        if (literal) parts.push(literal)
        literal = ''
        const start = offsetOf(i)
        parts.push({ ref: m[1]!, rest: m[2] === '*', span: { file: span.file, offset: start, length: offsetOf(i + m[0].length) - start } })
        i += m[0].length
        continue
      }
    }
    literal += text[i]
    i++
  }
  if (literal) parts.push(literal)
  return { parts, span }
}

// For a quoted string token: map an index in the unescaped text back to the source.
export function stringOffsets(image: string, tokenOffset: number): (i: number) => number {
  const map: number[] = []
  for (let j = 1; j < image.length - 1; j++) {
    map.push(tokenOffset + j)
    if (image[j] === '\\') j++
  }
  map.push(tokenOffset + image.length - 1)
  return (i) => map[i] ?? tokenOffset
}

export function isPlain(t: Template): boolean {
  return t.parts.every((p) => typeof p === 'string')
}

export function refsOf(t: Template): RefPart[] {
  return t.parts.filter((p): p is RefPart => typeof p !== 'string')
}

// Check time: is every reference known on this route, in this mode?
export function checkTemplate(t: Template, mode: TemplateMode, route: RouteInfo, bag: DiagnosticBag): void {
  for (const p of t.parts) {
    if (typeof p === 'string') continue
    if (p.rest) {
      const capture = route.params.get(p.ref)
      if (mode !== 'path') bag.error('bad-reference', `'{${p.ref}*}' only makes sense in a path; write '{${p.ref}}' here`, p.span)
      else if (!capture?.rest) {
        const rests = [...route.params].filter(([, c]) => c.rest).map(([name]) => name)
        const near = didYouMean(p.ref, rests) ?? (rests.length === 1 ? rests[0] : undefined)
        bag.error('bad-reference', `the route ${route.label} has no rest capture '{${p.ref}*}'`, p.span, ...suggestionNote(near && `{${near}*}`))
      }
      continue
    }
    const problem = checkReference(p.ref, route)
    if (problem) bag.error('unknown-reference', problem.message, p.span, ...suggestionNote(problem.suggestion))
  }
}

export function suggestionNote(suggestion: string | undefined): Note[] {
  return suggestion ? [{ message: `did you mean '${suggestion}'?` }] : []
}
