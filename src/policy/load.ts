// Every `*.policy` under a directory (recursively, in path order) plus what they import.
import { readdirSync, readFileSync, realpathSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve, isAbsolute } from 'node:path'
import { parseFile, type ParsedFile } from './ast.ts'
import type { DiagnosticBag } from './diagnostics.ts'
import { SourceFile } from './source.ts'

export class PolicyDirError extends Error {}

function policyFiles(dir: string): string[] {
  const out: string[] = []
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (entry.name.startsWith('.') || entry.name === 'node_modules') continue
      const p = join(d, entry.name)
      if (entry.isDirectory()) walk(p)
      else if (entry.name.endsWith('.policy')) out.push(p)
    }
  }
  walk(dir)
  return out
}

// Paths in diagnostics: relative to the working directory when inside it.
export function displayPath(abs: string): string {
  const rel = relative(process.cwd(), abs)
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : abs
}

export function loadPolicies(dir: string, bag: DiagnosticBag): ParsedFile[] {
  let isDir = false
  try {
    isDir = statSync(dir).isDirectory()
  } catch {}
  if (!isDir) throw new PolicyDirError(`cannot read policy directory ${dir}: not a directory`)
  const files: ParsedFile[] = []
  const loaded = new Set<string>()
  const load = (abs: string): void => {
    const real = realpathSync(abs)
    if (loaded.has(real)) return
    loaded.add(real)
    const parsed = parseFile(new SourceFile(displayPath(abs), abs, readFileSync(abs, 'utf8').replace(/^\uFEFF/, '')), bag)
    files.push(parsed)
    for (const d of parsed.declarations) {
      if (d.kind !== 'import') continue
      const target = resolve(dirname(abs), d.path)
      let ok = false
      try {
        ok = statSync(target).isFile()
      } catch {}
      if (!ok) bag.error('missing-file', `cannot import "${d.path}": no such file (looked for ${displayPath(target)})`, d.pathSpan)
      else if (!target.endsWith('.policy')) bag.error('bad-import', `only .policy files can be imported, not "${d.path}"`, d.pathSpan)
      else load(target)
    }
  }
  const found = policyFiles(resolve(dir))
  if (found.length === 0) bag.error('no-policies', `no *.policy files under ${dir}`)
  for (const f of found) load(f)
  return files
}
