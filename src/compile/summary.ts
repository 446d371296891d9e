// What a program is made of, by name, with a fingerprint of each part's configuration: a
// reload compares two (runtime/program-changes.ts) to say what changed.
// Fingerprints are hashes: they never carry a value (a secret's `env NAME` is configuration,
// but an inline value would not be printed either).
import type { CheckedProgram } from '../check/check-program.ts'
import { SourceFile, type Span } from '../policy/source.ts'
import type { ProgramParts } from '../runtime/program.ts'

const spanText = (s: Span) => s.file.text.slice(s.offset, s.offset + s.length).replace(/\s+/g, ' ')

// JSON of a block's configuration without its source positions (moving a block is no change).
function configJson(value: unknown): string {
  return JSON.stringify(value, (key, v) => {
    if (key === 'span' || key.endsWith('Span') || v instanceof SourceFile) return undefined
    if (v instanceof Map) return [...v]
    if (v instanceof Set) return [...v]
    return v
  })
}

const hash = (text: string) => Bun.hash(text).toString(36)

export function programSummary(checked: CheckedProgram): ProgramParts {
  return {
    routes: new Map(
      checked.routes.map((r) => [r.id, hash(r.uses.map((u) => spanText(u.statement) + (u.def.fingerprint?.(u.cfg) ?? '')).join('\n'))]),
    ),
    upstreams: new Map([...checked.upstreams].map(([name, u]) => [name, hash(configJson(u))])),
    apps: new Map([...checked.apps].map(([name, a]) => [name, hash(configJson(a))])),
  }
}
