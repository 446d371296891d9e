// Diagnostics are data with a span; `renderDiagnostic` is the only printer.
import { describeSpan, type Span } from './source.ts'

export interface Note {
  message: string
  span?: Span
}

export interface Diagnostic {
  code: string // stable kebab-case: unknown-directive, route-conflict, …
  message: string
  span?: Span
  notes: Note[]
}

export class DiagnosticBag {
  readonly items: Diagnostic[] = []

  error(code: string, message: string, span?: Span, ...notes: Note[]): undefined {
    // Defaults are checked once per route: say each problem once.
    if (this.items.some((d) => d.code === code && d.message === message && d.span?.offset === span?.offset && d.span?.file === span?.file))
      return undefined
    this.items.push({ code, message, span, notes })
    return undefined
  }

  get hasErrors(): boolean {
    return this.items.length > 0
  }
}

export function sortDiagnostics(items: Diagnostic[]): Diagnostic[] {
  return [...items].sort((a, b) => {
    const fa = a.span?.file.path ?? ''
    const fb = b.span?.file.path ?? ''
    if (fa !== fb) return fa < fb ? -1 : 1
    return (a.span?.offset ?? 0) - (b.span?.offset ?? 0)
  })
}

function excerpt(span: Span): string[] {
  const { line, col } = span.file.position(span.offset)
  const text = span.file.lineText(line)
  const lineChars = [...text]
  const width = Math.max(1, Math.min([...span.file.text.slice(span.offset, span.offset + span.length)].length, lineChars.length - col + 1))
  const gutter = String(line).length
  const pad = lineChars
    .slice(0, col - 1)
    .map((c) => (c === '\t' ? '\t' : ' '))
    .join('')
  return [`${String(line).padStart(gutter)} | ${text}`, `${' '.repeat(gutter)} | ${pad}${'^'.repeat(width)}`]
}

export function renderDiagnostic(d: Diagnostic): string {
  const lines = [d.span ? `${describeSpan(d.span)}: error: ${d.message}` : `error: ${d.message}`]
  if (d.span) lines.push(...excerpt(d.span))
  for (const note of d.notes) {
    lines.push(note.span ? `${describeSpan(note.span)}: note: ${note.message}` : `note: ${note.message}`)
  }
  return lines.join('\n')
}

export function renderDiagnostics(items: Diagnostic[]): string {
  const sorted = sortDiagnostics(items)
  const body = sorted.map(renderDiagnostic).join('\n')
  return `${body}\n${sorted.length} error${sorted.length === 1 ? '' : 's'}\n`
}

// The JSON shape of the admin API: {file, line, col, message, code, notes?}; notes only when
// there are some, each {message} plus {file, line, col} when it points somewhere.
export interface DiagnosticJson {
  file: string | null
  line: number | null
  col: number | null
  message: string
  code: string
  notes?: { message: string; file?: string; line?: number; col?: number }[]
}

function placeJson(span: Span): { file: string; line: number; col: number } {
  const { line, col } = span.file.position(span.offset)
  return { file: span.file.path, line, col }
}

export function diagnosticJson(d: Diagnostic): DiagnosticJson {
  const notes = d.notes.map((n) => (n.span ? { message: n.message, ...placeJson(n.span) } : { message: n.message }))
  const place = d.span ? placeJson(d.span) : { file: null, line: null, col: null }
  return { ...place, message: d.message, code: d.code, ...(notes.length ? { notes } : {}) }
}

// esbuild-style typo suggestion: the closest candidate within a third of the length
// (at least one edit). Case is ignored; swapping two neighbours counts as one edit (GTE → GET).
export function didYouMean(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined
  let bestDistance = Infinity
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase())
    if (d < bestDistance) {
      best = c
      bestDistance = d
    }
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.floor(word.length / 3)) ? best : undefined
}

// Optimal string alignment: insertions, deletions, substitutions and adjacent transpositions.
function editDistance(a: string, b: string): number {
  let before: number[] = []
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) {
      let d = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, before[j - 2]! + 1)
      row.push(d)
    }
    before = prev
    prev = row
  }
  return prev[b.length]!
}
