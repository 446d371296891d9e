// The one call from the server and CLI into the front end: text → Program or diagnostics.
import { checkProgram } from '../check/check-program.ts'
import { DiagnosticBag, sortDiagnostics, type Diagnostic } from '../policy/diagnostics.ts'
import { loadPolicies } from '../policy/load.ts'
import type { RequestObserver } from '../runtime/handle.ts'
import type { IpMatcher } from '../runtime/ip.ts'
import type { Program } from '../runtime/program.ts'
import { compileProgram } from './compile-program.ts'

export interface BuildOptions {
  trustProxy?: IpMatcher | null
  observer?: RequestObserver
  version?: number
  upstreams?: Readonly<Record<string, string>>
  // false: no active health checks from this program (the --workers primary only routes admin calls).
  healthChecks?: boolean
}

export type BuildResult = { program: Program; diagnostics?: undefined } | { program?: undefined; diagnostics: Diagnostic[] }

const quiet: RequestObserver = { done: (_facts, res) => res }
let versions = 0

// Throws PolicyDirError only when DIR itself cannot be read.
export function buildProgram(dir: string, opts: BuildOptions = {}): BuildResult {
  const bag = new DiagnosticBag()
  const files = loadPolicies(dir, bag)
  const checked = checkProgram(files, bag)
  if (bag.hasErrors) return { diagnostics: sortDiagnostics(bag.items) }
  const program = compileProgram(checked, {
    trustProxy: opts.trustProxy ?? null,
    observer: opts.observer ?? quiet,
    version: opts.version ?? ++versions,
    upstreams: opts.upstreams,
    healthChecks: opts.healthChecks,
  })
  return { program }
}
