// `script STAGE "path.ts" [timeout D] [max SIZE]`: what the four `script` directives share
// (docs/scripts.md). The module is loaded when the policies are checked, so a missing file, a
// module that does not load and a default export that is not a function are check errors at
// the path, with the module's own message.
import { dirname, resolve } from 'node:path'
import type { ArgCursor } from '../policy/cursor.ts'
import type { Note } from '../policy/diagnostics.ts'
import { displayPath } from '../policy/load.ts'
import { SourceFile, spanOf, type Span } from '../policy/source.ts'
import { DEFAULT_ANSWER_CAP } from '../runtime/answer-body.ts'
import type { ScriptSite, ScriptStage } from '../script/context.ts'
import { routeKeyValues } from '../script/kv.ts'
import { loadScript, type ScriptProblem } from '../script/load.ts'
import type { ScriptFn } from '../script/run.ts'
import type { CompileContext } from './define.ts'

export const DEFAULT_BUDGET_MS = 50
const MAX_BUDGET_MS = 60_000

export interface ScriptConfig {
  stage: ScriptStage
  written: string // the path as the policy gives it
  shown: string // the path as diagnostics and logs show it
  fn: ScriptFn
  budgetMs: number
  interruptible: boolean
  cap: number // the most `ctx.response.body()` reads (response scripts)
  files: readonly string[] // the script and the local modules it imports
  version: string // a hash of their texts
  span: Span
}

export const scriptUsage = (stage: ScriptStage) =>
  `script ${stage} "path/to/script.ts" [timeout DURATION] [interruptible]${stage === 'response' ? ' [max SIZE]' : ''}`

// Absolute paths in Bun's messages, shown as diagnostics show paths.
const cwd = `${process.cwd()}/`
const shorten = (text: string) => text.split(cwd).join('')

function whereNote(at: ScriptProblem['at']): Note[] {
  if (!at) return []
  const file = new SourceFile(displayPath(at.file), at.file, at.text)
  let offset = 0
  for (let line = 1; line < at.line; line++) {
    const nl = at.text.indexOf('\n', offset)
    if (nl === -1) return [{ message: `at ${displayPath(at.file)}:${at.line}:${at.col}` }]
    offset = nl + 1
  }
  return [{ message: 'the error is here', span: spanOf(file, Math.min(offset + at.col - 1, at.text.length), 1) }]
}

export function readScript(a: ArgCursor, stage: ScriptStage): ScriptConfig | undefined {
  const s = a.string('a "path/to/script.ts"')
  if (!s) return undefined
  let budgetMs = DEFAULT_BUDGET_MS
  let cap = DEFAULT_ANSWER_CAP
  let interruptible = false
  const options = stage === 'response' ? ['timeout', 'interruptible', 'max'] : ['timeout', 'interruptible']
  const seen = new Set<string>()
  while (!a.done()) {
    const w = a.peek()!
    if (w.kind !== 'word' || !options.includes(w.text))
      return a.fail('bad-argument', `unknown option '${w.text}' of '${a.name}'; options: ${options.join(', ')}`, w.span)
    if (seen.has(w.text)) return a.fail('duplicate-field', `'${w.text}' is given twice`, w.span)
    seen.add(w.text)
    a.accept(w.text)
    if (w.text === 'timeout') {
      const arg = a.peek()
      const ms = a.duration('a budget like 20ms')
      if (ms === undefined) return undefined
      if (ms > MAX_BUDGET_MS) return a.fail('bad-argument', `a script's budget is at most 1m, found ${arg!.text}`, arg!.span)
      budgetMs = ms
    } else if (w.text === 'interruptible') {
      interruptible = true
    } else {
      const size = a.size()
      if (size === undefined) return undefined
      cap = size
    }
  }
  const span = s.arg.span
  const path = resolve(dirname(span.file.absPath), s.value)
  const shown = displayPath(path)
  const loaded = loadScript(path)
  if (!loaded.ok) {
    const p = loaded.problem
    if (p.code === 'missing-file') return void a.bag.error('missing-file', `script "${s.value}" ${p.message} (looked for ${shown})`, span)
    if (p.code === 'script-export') return void a.bag.error('script-export', `script "${s.value}": ${p.message}`, span)
    return void a.bag.error('script-load', `script "${s.value}" does not load: ${shorten(p.message)}`, span, ...whereNote(p.at))
  }
  return {
    stage,
    written: s.value,
    shown,
    fn: loaded.fn as ScriptFn,
    budgetMs,
    interruptible,
    cap,
    files: loaded.files,
    version: loaded.version,
    span,
  }
}

export const scriptVersion = (cfg: ScriptConfig) => cfg.version

export function describeScript(cfg: ScriptConfig): string {
  return `script ${cfg.stage} "${cfg.written}"`
}

// The script on its route; the gateway watches its files (those outside the policy directory too).
export function scriptSite(cfg: ScriptConfig, ctx: CompileContext): ScriptSite {
  for (const file of cfg.files) ctx.dependsOn(file)
  return Object.freeze({
    stage: cfg.stage,
    script: cfg.shown,
    route: ctx.route.id,
    kv: routeKeyValues(ctx.store.kv, ctx.route.id),
    budgetMs: cfg.budgetMs,
    interruptible: cfg.interruptible,
  })
}
