// What `gateway explain` and the admin API's POST /explain share: the policies built with
// `explain` on, every upstream target pointed at a local mock (200 `{}`) so nothing real is
// contacted, and one request run through them with the trace of what each directive decided.
import { buildProgram } from '../compile/build-program.ts'
import type { Diagnostic } from '../policy/diagnostics.ts'
import type { DecisionTrace, ForwardedRequest } from '../runtime/decisions.ts'
import type { Program } from '../runtime/program.ts'
import type { Peer } from '../runtime/request.ts'
import { memoryStore } from '../store/memory.ts'
import type { Store } from '../store/store.ts'
import { identify } from './callers.ts'
import { testJwtKey } from './jwt.ts'

export const BODY_SHOWN = 2_000 // characters of a body a trace or an answer shows

export interface ExplainInput {
  method: string // upper case
  target: string // /path[?query]
  headers: [string, string][]
  as: string | null // the app whose credentials the request presents
  body: Uint8Array | null
  ip: string
}

export interface ExplainOutcome {
  trace: DecisionTrace // with what the upstream would have received (`forwarded`)
  status: number
  headers: [string, string][]
  body: string
}

// The input cannot make a request (a Host that makes no URL).
export class ExplainInputError extends Error {}

// One mock per real target: it answers 200 `{}` and keeps what it received.
interface Mock {
  label: string // `orders http://10.0.0.5:8080` (or the origin of a `proxy URL`)
  real: URL
  origin: string // the mock's own origin
  server: ReturnType<typeof Bun.serve>
}

class Mocks {
  private readonly byTarget = new Map<string, Mock>()
  received: ForwardedRequest[] = []

  // Where a target's requests go instead: the mock, keeping the target's base path.
  retarget = (upstream: string | null, url: URL): URL => {
    const key = `${upstream ?? ''} ${url.origin}`
    let mock = this.byTarget.get(key)
    if (!mock) {
      const label = upstream === null ? url.origin : `${upstream} ${url.origin}`
      const server = Bun.serve({
        hostname: '127.0.0.1',
        port: 0,
        fetch: async (req) => {
          const u = new URL(req.url)
          const text = req.body ? await req.text() : ''
          const headers = [...req.headers].map(([n, v]): [string, string] => [n, n === 'host' ? url.host : v])
          this.received.push({
            upstream: label,
            method: req.method,
            target: u.pathname + u.search,
            headers,
            ...(text ? { body: text.length > BODY_SHOWN ? `${text.slice(0, BODY_SHOWN)}…` : text } : {}),
          })
          return Response.json({})
        },
      })
      mock = { label, real: url, origin: `http://127.0.0.1:${server.port}`, server }
      this.byTarget.set(key, mock)
    }
    return new URL(mock.origin + url.pathname.replace(/\/$/, '') + url.search)
  }

  // A trace names the mocks' addresses; the reader wants the real targets'.
  unmock(text: string): string {
    let out = text
    for (const m of this.byTarget.values()) out = out.replaceAll(m.origin, m.real.origin)
    return out
  }

  stop(): void {
    for (const m of this.byTarget.values()) m.server.stop(true)
  }
}

function requestOf(input: ExplainInput): Request {
  const host = input.headers.find(([n]) => n.toLowerCase() === 'host')?.[1] ?? 'localhost'
  let url: string
  try {
    url = new URL(input.target, `http://${host}`).href
  } catch {
    throw new ExplainInputError(`cannot make a URL of host '${host}' and '${input.target}'`)
  }
  const headers = new Headers()
  for (const [n, v] of input.headers) headers.append(n, v)
  if (!headers.has('host')) headers.set('host', host)
  return new Request(url, { method: input.method, headers, body: input.body })
}

export interface Explainer {
  readonly program: Program
  // One request, as of `now` (ms): its trace, and the answer the client would get.
  run(input: ExplainInput, now?: number): Promise<ExplainOutcome>
  // Stops the mocks and releases the program (and the store made for it).
  close(): Promise<void>
}

export interface ExplainerOptions {
  // Requests will present an app's credentials: the program then also accepts the kit's JWTs.
  callers?: boolean
  // The store of the build (default: a fresh memory store, closed with the explainer), so a
  // `throttle` counts only the explainer's requests.
  store?: Store
}

// Builds DIR for explaining; its diagnostics when it does not check. Throws PolicyDirError only
// when DIR itself cannot be read.
export async function openExplainer(dir: string, opts: ExplainerOptions = {}): Promise<Explainer | { diagnostics: Diagnostic[] }> {
  const mocks = new Mocks()
  const own = opts.store ? null : memoryStore()
  let built
  try {
    built = await buildProgram(dir, {
      // Not a program the gateway serves: it takes no number from the serving programs' sequence.
      version: 0,
      explain: true,
      healthChecks: false,
      store: opts.store ?? own!,
      retarget: mocks.retarget,
      ...(opts.callers ? { testJwtKey: testJwtKey() } : {}),
    })
  } catch (err) {
    mocks.stop()
    await own?.close()
    throw err
  }
  if (built.diagnostics) {
    mocks.stop()
    await own?.close()
    return { diagnostics: built.diagnostics }
  }
  const program = built.program
  return {
    program,
    async run(input, now = Date.now()) {
      mocks.received = []
      let req = requestOf(input)
      let peer: Peer = { ip: input.ip, tls: false }
      if (input.as !== null) {
        const who = await identify(program, req, { as: input.as }, now)
        req = who.request
        peer = { ...peer, ...who.peer }
      }
      const { response, trace } = await program.explain(req, peer)
      const body = await response.text()
      const shown: DecisionTrace = JSON.parse(mocks.unmock(JSON.stringify({ ...trace, forwarded: mocks.received })))
      return { trace: shown, status: response.status, headers: [...response.headers], body }
    },
    async close() {
      mocks.stop()
      await program.dispose()
      await own?.close()
    },
  }
}
