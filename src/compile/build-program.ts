// The one call from the server and CLI into the front end: text → Program or diagnostics.
import { systemNow } from '../runtime/clock.ts'
import { checkProgram } from '../check/check-program.ts'
import { DiagnosticBag, sortDiagnostics, type Diagnostic } from '../policy/diagnostics.ts'
import { loadPolicies } from '../policy/load.ts'
import type { RequestObserver } from '../runtime/handle.ts'
import type { IpMatcher } from '../runtime/ip.ts'
import type { Program } from '../runtime/program.ts'
import { compileProgram } from './compile-program.ts'
import { openapiDocument, type OpenApiOptions, type OpenApiResult } from './openapi.ts'
import type { Env } from '../policy/secrets.ts'
import { storeAppsOf } from '../runtime/store-apps.ts'
import { memoryStore } from '../store/memory.ts'
import type { Store } from '../store/store.ts'
import { SinkManager } from '../log/sinks/manager.ts'
import { DEFAULT_SPOOL_DIR } from '../log/sinks/spec.ts'
import type { TestJwtKey } from '../directives/define.ts'
import { recordFacts, recordSources } from '../testing/facts.ts'

let processStore: Store | null = null
let processSinks: SinkManager | null = null
// The embedded store every build without one shares, as one process's programs share state.
export function defaultStore(): Store {
  return (processStore ??= memoryStore())
}

// The sinks of builds given none (`gateway check`, in-process tests): they do nothing until an
// entry comes, and then spool under the default directory.
function defaultSinks(): SinkManager {
  return (processSinks ??= new SinkManager({ spoolDir: DEFAULT_SPOOL_DIR, redisUrl: null, live: false }))
}

export interface BuildOptions {
  trustProxy?: IpMatcher | null
  observer?: RequestObserver
  version?: number
  upstreams?: Readonly<Record<string, string>>
  // false: no active health checks from this program (the --workers primary only routes admin calls).
  healthChecks?: boolean
  // Shared state (nonces, store apps): the process's embedded store unless given.
  store?: Store
  // Where `env NAME` secrets come from (default process.env).
  env?: Env
  // The clock of identity checks (signature windows, JWT expiry, key rotation windows) and rate
  // limits, ms. A store made for the build should run on it too (memoryStore({ now })).
  now?: () => number
  // The testing kit's JWT key (portcullis/testing): every `require jwt` also accepts it.
  testJwtKey?: TestJwtKey
  // --workers above 1 without --redis: state that must be shared (nonces) cannot be.
  perWorkerStore?: boolean
  // The serving process's sinks (with --spool and --redis); a `redis stream` sink is then a check
  // error without --redis.
  sinks?: SinkManager
  // Record what each directive decides for each request, for Program.explain (gateway explain,
  // the testing kit). Off (the default), no stage function is wrapped.
  explain?: boolean
  // Where each upstream target's requests go instead (`gateway explain` points every one at a
  // local mock, so nothing real is contacted); `upstream` is null for a `proxy URL`.
  retarget?: (upstream: string | null, url: URL) => URL
}

export type BuildResult = { program: Program; diagnostics?: undefined } | { program?: undefined; diagnostics: Diagnostic[] }

const quiet: RequestObserver = { done: (_facts, res) => res }
let versions = 0

// Throws PolicyDirError only when DIR itself cannot be read.
export async function buildProgram(dir: string, opts: BuildOptions = {}): Promise<BuildResult> {
  const bag = new DiagnosticBag()
  const store = opts.store ?? defaultStore()
  const env = opts.env ?? process.env
  const now = opts.now ?? systemNow
  const storeApps = await storeAppsOf(store)
  const files = loadPolicies(dir, bag)
  const known = storeApps.live ? [...storeApps.current.byName.values()] : []
  const checked = checkProgram(files, bag, {
    env,
    now: now(),
    storeApps: known.map((a) => ({ name: a.name, key: a.key, group: a.group })),
    perWorkerStore: opts.perWorkerStore ?? false,
    redis: opts.sinks?.hasRedis,
  })
  if (bag.hasErrors) return { diagnostics: sortDiagnostics(bag.items) }
  const program = compileProgram(checked, {
    trustProxy: opts.trustProxy ?? null,
    observer: opts.observer ?? quiet,
    version: opts.version ?? ++versions,
    upstreams: opts.upstreams,
    testJwtKey: opts.testJwtKey ?? null,
    healthChecks: opts.healthChecks,
    store,
    storeApps,
    env,
    now,
    sinks: opts.sinks ?? defaultSinks(),
    explain: opts.explain,
    retarget: opts.retarget,
  })
  recordSources(program, checked)
  if (opts.explain) recordFacts(program, checked, env, opts.testJwtKey !== undefined)
  return { program }
}

export type { OpenApiOptions, OpenApiResult }

// `gateway openapi`: the checked routes as an OpenAPI 3.1 document. Checked as `gateway check`
// does (store apps aside: none are known offline); nothing is compiled or started.
// Throws PolicyDirError only when DIR itself cannot be read.
export function buildOpenApi(dir: string, opts: OpenApiOptions & { env?: Env } = {}): OpenApiResult | { diagnostics: Diagnostic[] } {
  const bag = new DiagnosticBag()
  const files = loadPolicies(dir, bag)
  const checked = checkProgram(files, bag, { env: opts.env ?? process.env, now: Date.now(), storeApps: [] })
  if (bag.hasErrors) return { diagnostics: sortDiagnostics(bag.items) }
  return openapiDocument(checked, opts)
}
