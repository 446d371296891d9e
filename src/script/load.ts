// Loading a script module when the policies are checked (a build, a reload, `gateway check`).
//
// Bun caches modules by specifier, so each version of a script is required under its own:
// `file.ts?v=<hash of the script and the local modules it imports>`. A module the script
// imports by a relative path is evaluated again when its text changed (its cache entry is
// dropped first); packages (node_modules) and the gateway's own modules stay cached for the
// life of the process. An unchanged script is not evaluated again: a reload keeps its module.
// Loading is synchronous (require), so a script cannot use top-level await.
import { readFileSync } from 'node:fs'
import { dirname, extname, resolve, sep } from 'node:path'

export interface ScriptProblem {
  code: 'missing-file' | 'script-load' | 'script-export'
  message: string
  // Where in the script (or a module it imports) the problem is, when the error says.
  at?: { file: string; line: number; col: number; text: string }
}

export type LoadResult =
  | { ok: true; fn: (...args: never[]) => unknown; version: string; files: readonly string[] }
  | { ok: false; problem: ScriptProblem; files: readonly string[] }

const CODE = new Set(['.ts', '.tsx', '.mts', '.cts', '.js', '.jsx', '.mjs', '.cjs'])
const MAX_FILES = 256
// The gateway's own modules are never evaluated twice (two GatewayError classes would not be one).
const GATEWAY_SRC = resolve(import.meta.dir, '..') + sep

interface Loaded {
  key: string // the specifier it was required under
  version: string
  fn: (...args: never[]) => unknown
}
const loaded = new Map<string, Loaded>() // script path → its current module
const evaluated = new Map<string, string>() // imported module path → hash of the text it was evaluated from

const transpilers = new Map<string, Bun.Transpiler>()
function importsOf(file: string, text: string): string[] {
  const ext = extname(file)
  const loader = ext === '.tsx' ? 'tsx' : ext === '.jsx' ? 'jsx' : ext === '.ts' || ext === '.mts' || ext === '.cts' ? 'ts' : 'js'
  let t = transpilers.get(loader)
  if (!t) transpilers.set(loader, (t = new Bun.Transpiler({ loader })))
  try {
    return t.scanImports(text).map((i) => i.path)
  } catch {
    return [] // a syntax error: require reports it, with its position
  }
}

function isLocal(spec: string): boolean {
  return spec.startsWith('./') || spec.startsWith('../') || spec.startsWith('/')
}

// The script and the local modules it imports (transitively), with their texts.
function moduleGraph(entry: string, entryText: string): Map<string, string> {
  const files = new Map<string, string>([[entry, entryText]])
  const queue = [entry]
  while (queue.length > 0 && files.size < MAX_FILES) {
    const file = queue.shift()!
    if (!CODE.has(extname(file))) continue
    for (const spec of importsOf(file, files.get(file)!)) {
      if (!isLocal(spec)) continue
      let path: string
      try {
        path = Bun.resolveSync(spec, dirname(file))
      } catch {
        continue // require reports it
      }
      if (files.has(path) || path.includes(`${sep}node_modules${sep}`) || path.startsWith(GATEWAY_SRC)) continue
      try {
        files.set(path, readFileSync(path, 'utf8'))
      } catch {
        continue
      }
      queue.push(path)
    }
  }
  return files
}

const hashOf = (text: string) => Bun.hash(text).toString(36)

export function loadScript(path: string): LoadResult {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : `cannot be read (${(err as Error).message})`
    return { ok: false, problem: { code: 'missing-file', message: why }, files: [path] }
  }
  const graph = moduleGraph(path, text)
  const files = [...graph.keys()]
  let all = ''
  for (const [file, t] of graph) all += `${file}\0${t}\0`
  const version = hashOf(all)
  const current = loaded.get(path)
  if (current?.version === version) return { ok: true, fn: current.fn, version, files }

  // Imported modules whose text changed since they were evaluated are evaluated again.
  for (const [file, t] of graph) {
    if (file === path) continue
    const was = evaluated.get(file)
    if (was !== undefined && was !== hashOf(t)) delete require.cache[file]
  }
  const key = `${path}?v=${version}`
  let mod: unknown
  try {
    mod = require(key)
  } catch (err) {
    delete require.cache[key]
    // A module of the graph that failed may be cached half-evaluated: the next try starts over.
    for (const file of files) if (file !== path && evaluated.get(file) !== hashOf(graph.get(file)!)) delete require.cache[file]
    return { ok: false, problem: { code: 'script-load', ...describeFailure(err, key, path) }, files }
  }
  for (const [file, t] of graph) if (file !== path) evaluated.set(file, hashOf(t))
  const fn = defaultExport(mod)
  if (typeof fn !== 'function') {
    delete require.cache[key]
    const what = fn === undefined ? 'it has none' : `it is ${describeValue(fn)}`
    return {
      ok: false,
      problem: { code: 'script-export', message: `its default export must be the script's function (${what}): export default function (ctx) { … }` },
      files,
    }
  }
  if (current) delete require.cache[current.key]
  loaded.set(path, { key, version, fn: fn as Loaded['fn'] })
  return { ok: true, fn: fn as Loaded['fn'], version, files }
}

function defaultExport(mod: unknown): unknown {
  if (typeof mod === 'function') return mod // module.exports = function …
  if (mod !== null && typeof mod === 'object' && 'default' in mod) return (mod as { default: unknown }).default
  return undefined
}

function describeValue(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`
}

interface Position {
  file?: string
  line?: number
  column?: number
}

// Bun's errors: a BuildMessage (syntax) or an AggregateError of them, a ResolveMessage (a
// missing import), or whatever the module threw while it was evaluated.
function describeFailure(err: unknown, key: string, path: string): Omit<ScriptProblem, 'code'> {
  const first = err instanceof AggregateError && err.errors.length > 0 ? err.errors[0] : err
  const raw = String((first as Error)?.message ?? first)
  let message = raw.split(key).join(path)
  if (/require\(\) async module/.test(raw))
    message = 'it uses top-level await, which a script cannot: scripts load synchronously when the policies are checked'
  const more = err instanceof AggregateError && err.errors.length > 1 ? ` (and ${err.errors.length - 1} more)` : ''
  return { message: message + more, at: positionOf(first, path) }
}

function positionOf(err: unknown, path: string): ScriptProblem['at'] {
  const e = err as { position?: Position | null; line?: number; column?: number; sourceURL?: string }
  let file: string | undefined
  let line: number | undefined
  let col: number | undefined
  if (e?.position && e.position.line) {
    file = e.position.file
    line = e.position.line
    col = Math.max(1, e.position.column ?? 1) // 1-based, as Bun reports it
  } else if (typeof e?.line === 'number' && e.line > 0 && e.sourceURL) {
    file = e.sourceURL.split('?')[0]
    line = e.line
    col = Math.max(1, e.column ?? 1)
  }
  if (!file || !line || !col) return undefined
  file = file.split('?')[0]!
  try {
    return { file, line, col, text: readFileSync(file, 'utf8') }
  } catch {
    return file === path ? undefined : { file, line, col, text: '' }
  }
}
