// Policy text fetched from GET /source: a route's block as written (its directives with their
// arguments) and its lifecycle (`status deprecated …`), which the route table names only.
import { get, type SourceAnswer } from './api.ts'

const files = new Map<string, Promise<SourceAnswer>>()

// The whole file (the API answers with all its lines); fetched once per page visit.
export function sourceOf(file: string, line = 1): Promise<SourceAnswer> {
  let text = files.get(file)
  if (!text) {
    text = get<SourceAnswer>(`/source?file=${encodeURIComponent(file)}&line=${line}`)
    files.set(file, text)
    text.catch(() => files.delete(file))
  }
  return text
}

export const forgetSources = (): void => files.clear()

// Braces outside strings and comments, for finding where a block ends.
function braceDelta(line: string): { delta: number; opened: boolean } {
  let delta = 0
  let opened = false
  let quote: string | null = null
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!
    if (quote) {
      if (c === '\\') i++
      else if (c === quote) quote = null
    } else if (c === '"' || c === "'") quote = c
    else if (c === '#') break
    else if (c === '{') (delta++, (opened = true))
    else if (c === '}') delta--
  }
  return { delta, opened }
}

// The lines of the block that starts at `line` (1-based), up to its closing brace.
export function blockAt(lines: readonly string[], line: number, max = 400): { first: number; lines: string[] } {
  const out: string[] = []
  let depth = 0
  let opened = false
  for (let i = line - 1; i < lines.length && out.length < max; i++) {
    const text = lines[i]!
    out.push(text)
    const d = braceDelta(text)
    depth += d.delta
    opened ||= d.opened
    if (opened && depth <= 0) break
  }
  return { first: line, lines: out }
}

// The lifecycle a route's block declares: `deprecated sunset 2027-06-30`, `blocked`, `retired`, or
// `active` when it says nothing.
export function lifecycleOf(block: readonly string[]): string {
  for (const text of block.slice(1)) {
    const m = /^\s*status\s+([^#]*)/.exec(text)
    if (m) return m[1]!.trim()
  }
  return 'active'
}
