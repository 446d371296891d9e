// Every `*.policy` under a directory (recursively, in path order), or one `.policy` file, plus
// what they import.
import { readdirSync, readFileSync, realpathSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve, isAbsolute, sep } from 'node:path'
import { parseFile, type ParsedFile } from './ast.ts'
import type { DiagnosticBag } from './diagnostics.ts'
import { SourceFile, spanOf, type Span } from './source.ts'

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

// Inside the directory (after following links) or not: a link or import that leaves it would
// let whoever can write one file there load any file the gateway can read.
function isInside(root: string, real: string): boolean {
  const rel = relative(root, real)
  return rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel)
}

function realPath(path: string): string | undefined {
  try {
    return realpathSync(path)
  } catch {
    return undefined
  }
}

// A file that is not read still gets a file:line:col: the first position of its name.
function pathSpan(abs: string): Span {
  return spanOf(new SourceFile(displayPath(abs), abs, ''), 0, 1)
}

// The reason a path cannot be read, in words (not a stack trace).
function unreadable(path: string, err: unknown): PolicyDirError {
  const code = (err as NodeJS.ErrnoException).code
  const why =
    code === 'ENOENT' || code === 'ENOTDIR'
      ? 'no such file or directory'
      : code === 'EACCES' || code === 'EPERM'
        ? 'permission denied'
        : (err as Error).message.split('\n')[0]
  return new PolicyDirError(`cannot read policies at ${path}: ${why}`)
}

// PATH is a directory (every `*.policy` under it) or a single `.policy` file: the program it forms
// alone with what it imports, its own directory then being the policy directory for the rules on
// links and imports. Throws PolicyDirError only when PATH itself cannot be used.
export function loadPolicies(path: string, bag: DiagnosticBag): ParsedFile[] {
  let isDir: boolean
  try {
    const stat = statSync(path)
    isDir = stat.isDirectory()
    if (!isDir && !stat.isFile()) throw new PolicyDirError(`cannot read policies at ${path}: neither a directory nor a file`)
  } catch (e) {
    throw e instanceof PolicyDirError ? e : unreadable(path, e)
  }
  if (!isDir && !path.endsWith('.policy')) throw new PolicyDirError(`cannot read policies at ${path}: not a .policy file or a directory`)
  // The directory the rules on links and imports keep loading inside, as the messages name it.
  const dir = isDir ? path : dirname(path) === '.' ? process.cwd() : dirname(path)
  let root: string
  try {
    root = realpathSync(dir)
  } catch (e) {
    throw unreadable(dir, e)
  }
  const files: ParsedFile[] = []
  const loaded = new Set<string>()
  const load = (abs: string, real: string): void => {
    if (loaded.has(real)) return
    loaded.add(real)
    const parsed = parseFile(new SourceFile(displayPath(abs), abs, readFileSync(real, 'utf8').replace(/^\uFEFF/, '')), bag)
    files.push(parsed)
    for (const d of parsed.declarations) {
      if (d.kind !== 'import') continue
      const target = resolve(dirname(abs), d.path)
      const targetReal = realPath(target)
      let ok = false
      try {
        ok = statSync(target).isFile()
      } catch {}
      if (!ok || !targetReal) bag.error('missing-file', `cannot import "${d.path}": no such file (looked for ${displayPath(target)})`, d.pathSpan)
      else if (!target.endsWith('.policy')) bag.error('bad-import', `only .policy files can be imported, not "${d.path}"`, d.pathSpan)
      else if (!isInside(root, targetReal))
        bag.error('outside-policies', `cannot import "${d.path}": ${displayPath(targetReal)} is outside the policy directory ${dir}`, d.pathSpan)
      else load(target, targetReal)
    }
  }
  const found = isDir ? policyFiles(resolve(dir)) : [resolve(path)]
  if (found.length === 0) bag.error('no-policies', `no *.policy files under ${dir}`)
  for (const f of found) {
    const real = realPath(f)
    if (!real) bag.error('missing-file', `${displayPath(f)} is a symbolic link to a file that does not exist`, pathSpan(f))
    else if (!isInside(root, real))
      bag.error(
        'outside-policies',
        `${displayPath(f)} links to ${displayPath(real)}, outside the policy directory ${dir}; it is not loaded`,
        pathSpan(f),
      )
    else if (statSync(real).isFile()) load(f, real) // a link to a directory named *.policy is no file
  }
  return files
}
