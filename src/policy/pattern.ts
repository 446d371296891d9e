// Path patterns → router segments, with diagnostics for what cannot work.
import type { Arg } from './ast.ts'
import { didYouMean, type DiagnosticBag } from './diagnostics.ts'
import { spanOf } from './source.ts'
import { normalizePath } from '../runtime/normalize.ts'
import type { PatternSegment } from '../runtime/router.ts'

const TYPES: Record<string, RegExp> = {
  int: /^[0-9]+$/,
  uuid: /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/,
}

const GROUP = /^\{([A-Za-z_][A-Za-z0-9_]*)(?::(?:([A-Za-z]+)|\/(.*)\/))?(\*)?\}$/

export interface ParsedPattern {
  segments: PatternSegment[]
  params: Map<string, { rest: boolean }>
  shape: string // equal shapes have equal precedence everywhere
}

// Splits on `/` outside braces, so `{code:/[A-Z]{3}/}` stays one segment.
function splitSegments(text: string): string[] {
  const parts: string[] = []
  let depth = 0
  let current = ''
  for (const ch of text) {
    if (ch === '{') depth++
    else if (ch === '}') depth = Math.max(0, depth - 1)
    if (ch === '/' && depth === 0) {
      parts.push(current)
      current = ''
    } else current += ch
  }
  parts.push(current)
  return parts
}

export function parsePattern(arg: Arg, bag: DiagnosticBag): ParsedPattern | undefined {
  const text = arg.text
  const segments: PatternSegment[] = []
  const params = new Map<string, { rest: boolean }>()
  const shape: string[] = []
  let ok = true
  let offset = 0
  const parts = splitSegments(text)
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!
    const span = spanOf(arg.span.file, arg.span.offset + offset, part.length || 1)
    offset += part.length + 1
    if (part === '') continue
    const fail = (message: string) => {
      ok = false
      bag.error('bad-pattern', message, span)
    }
    if (segments.some((s) => s.kind === 'rest')) {
      fail('a rest capture {name*} must be the last segment')
      continue
    }
    if (!part.includes('{') && !part.includes('}')) {
      if (part === '.' || part === '..') fail(`'${part}' can never match: request paths are normalised first`)
      const norm = normalizePath(`/${part}`)
      if (!norm) fail(`'${part}' has a malformed percent-encoding`)
      else {
        const value = norm.segments[0] ?? ''
        segments.push({ kind: 'literal', value })
        shape.push(`l:${value}`)
      }
      continue
    }
    const m = GROUP.exec(part)
    if (!m) {
      fail(`'${part}' is not a capture: write {name}, {name:int}, {name:uuid}, {name:/regex/} or {name*} as a whole segment`)
      continue
    }
    const [, name, type, regex, star] = m as unknown as [string, string, string | undefined, string | undefined, string | undefined]
    if (params.has(name)) fail(`the capture '${name}' appears twice`)
    params.set(name, { rest: Boolean(star) })
    if (star) {
      if (type || regex !== undefined) fail('a rest capture {name*} cannot have a type')
      segments.push({ kind: 'rest', name })
      shape.push('r')
    } else if (type) {
      const re = TYPES[type]
      if (!re) {
        const near = didYouMean(type, Object.keys(TYPES))
        fail(`unknown capture type '${type}' (types: ${Object.keys(TYPES).join(', ')}, or /regex/)${near ? `; did you mean '${near}'?` : ''}`)
        continue
      }
      segments.push({ kind: 'typed', name, type, test: (s) => re.test(s) })
      shape.push(`t:${type}`)
    } else if (regex !== undefined) {
      let re: RegExp
      try {
        re = new RegExp(`^(?:${regex})$`)
      } catch (e) {
        fail(`invalid regular expression /${regex}/: ${(e as Error).message.replace(/^Invalid regular expression: /, '')}`)
        continue
      }
      segments.push({ kind: 'typed', name, type: `/${regex}/`, test: (s) => re.test(s) })
      shape.push(`t:/${regex}/`)
    } else {
      segments.push({ kind: 'param', name })
      shape.push('p')
    }
  }
  return ok ? { segments, params, shape: shape.join('/') } : undefined
}
