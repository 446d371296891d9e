// portcullis/testing: test a policy directory in process with `bun test`. loadGateway builds the
// directory through the same buildProgram the server uses, with mock upstreams, a clock the test
// moves, a fresh store, and callers that present the credentials the routes ask for:
//
//   const gw = await loadGateway('./policies', { upstreams: { orders: 'record' } })
//   const r = await gw.request('GET /api/v1/orders/1', { as: 'partner_a' })
//   expect(r.status, r.explain()).toBe(200)
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path'
import type { Server } from 'bun'
import { buildProgram } from '../compile/build-program.ts'
import { renderDiagnostics } from '../policy/diagnostics.ts'
import { displayPath } from '../policy/load.ts'
import type { Env } from '../policy/secrets.ts'
import type { DecisionTrace } from '../runtime/decisions.ts'
import { renderTrace } from '../runtime/decisions.ts'
import type { Program } from '../runtime/program.ts'
import type { Peer } from '../runtime/request.ts'
import { memoryStore } from '../store/memory.ts'
import { redisStore } from '../store/redis.ts'
import type { Store } from '../store/store.ts'
import { identify, type Caller } from './callers.ts'
import { KitClock, type Duration, type Instant } from './clock.ts'
import { factsOf } from './facts.ts'
import { testJwtKey } from './jwt.ts'

export { identify, type Caller } from './callers.ts'
export { KitClock, type Duration, type Instant } from './clock.ts'
export { renderTrace, type DecisionTrace, type StepRecord } from '../runtime/decisions.ts'

export type UpstreamHandler = (req: Request) => Response | Promise<Response>

export interface LoadOptions {
  // Named upstreams of the policies → a handler, or 'record' (200 `{}`). An upstream the
  // policies name but the test does not answers 502 `{}`. Every one keeps what it received.
  // A `proxy URL` target is mocked too when the test names its origin (`'http://127.0.0.1:9300'`);
  // otherwise it is left as written.
  upstreams?: Record<string, UpstreamHandler | 'record'>
  // What the upstreams `upstreams` does not name do: 'absent' (the default: 502 `{}`), 'record'
  // (200 `{}`) or a handler. They keep what they received all the same.
  otherUpstreams?: UpstreamHandler | 'record' | 'absent'
  // The `env NAME` secrets (process.env is then not read).
  env?: Record<string, string>
  // Files the policies read (`file "path"` secrets), by path relative to the policy directory.
  files?: Record<string, string>
  // A fresh memory store (the default), or Redis under a key prefix of its own.
  store?: 'memory' | { redis: string; prefix?: string }
  // Where the clock starts (default: the real time when loaded).
  now?: Instant
}

// What a mock upstream received.
export interface RecordedRequest {
  method: string
  path: string // path and query, as received
  headers: Record<string, string> // lower-case names
  body: string
}

export class MockUpstream {
  readonly requests: RecordedRequest[] = []
  private handler: UpstreamHandler | 'record' | 'absent'
  private server: Server<undefined> | null = null

  constructor(
    readonly name: string,
    handler: UpstreamHandler | 'record' | 'absent',
  ) {
    this.handler = handler
  }

  get url(): string {
    return `http://127.0.0.1:${this.start().port}`
  }

  // The last request received (undefined before any).
  get last(): RecordedRequest | undefined {
    return this.requests[this.requests.length - 1]
  }

  // Answers from now on with `handler` (or as a recorder).
  respond(handler: UpstreamHandler | 'record'): void {
    this.handler = handler
  }

  clear(): void {
    this.requests.length = 0
  }

  start(): Server<undefined> {
    return (this.server ??= Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      fetch: async (req) => {
        const body = req.body === null ? null : new Uint8Array(await req.arrayBuffer())
        const url = new URL(req.url)
        this.requests.push({
          method: req.method,
          path: `${url.pathname}${url.search}`,
          headers: Object.fromEntries(req.headers),
          body: body === null ? '' : new TextDecoder().decode(body),
        })
        const h = this.handler
        if (h === 'record') return Response.json({})
        if (h === 'absent') return Response.json({}, { status: 502 })
        return h(new Request(req.url, { method: req.method, headers: req.headers, body }))
      },
      error: (err) => new Response(`the mock upstream ${this.name} failed: ${err.message}`, { status: 500 }),
    }))
  }

  stop(): void {
    this.server?.stop(true)
    this.server = null
  }
}

export interface RequestOptions extends Caller {
  headers?: Record<string, string> | Headers | [string, string][]
  // A string or bytes as they are; anything else is sent as JSON (with its content type).
  body?: string | Uint8Array | ArrayBuffer | unknown
  ip?: string // the client address (default 127.0.0.1)
  host?: string // the Host header (default gateway.test)
  query?: Record<string, string | number | boolean | (string | number)[]>
  session?: string // an access token from gw.login
}

export interface KitResponse {
  status: number
  headers: Headers
  response: Response
  // The route matched (file:line) and what each directive decided, in stage order.
  trace: DecisionTrace
  text(): Promise<string>
  json<T = any>(): Promise<T>
  // The trace as `gateway explain` prints it: handy as an assertion message.
  explain(): string
}

// A request made ready to send (signed, its caller's credentials set), to send later or twice.
export interface Prepared {
  readonly method: string
  readonly url: string
  readonly headers: Headers
  readonly body: Uint8Array | null
  readonly peer: Peer
}

export interface LoginResult {
  accessToken: string
  refreshToken: string
  response: KitResponse
}

const REQUEST_LINE = /^(?:([A-Za-z]+)\s+)?(\/\S*)$/

function target(spec: string, opts: RequestOptions): { method: string; url: string } {
  const m = REQUEST_LINE.exec(spec.trim())
  if (!m) throw new Error(`'${spec}' is not a request like "GET /api/v1/orders/1" (a method, then a path starting with /)`)
  const url = new URL(`http://${opts.host ?? 'gateway.test'}${m[2]}`)
  for (const [k, v] of Object.entries(opts.query ?? {})) for (const x of Array.isArray(v) ? v : [v]) url.searchParams.append(k, String(x))
  return { method: (m[1] ?? 'GET').toUpperCase(), url: url.href }
}

function bodyOf(body: unknown, headers: Headers): Uint8Array | null {
  if (body === undefined || body === null) return null
  if (typeof body === 'string') return new TextEncoder().encode(body)
  if (body instanceof Uint8Array) return body
  if (body instanceof ArrayBuffer) return new Uint8Array(body)
  if (!headers.has('content-type')) headers.set('content-type', 'application/json')
  return new TextEncoder().encode(JSON.stringify(body))
}

export class Gateway {
  private closed = false

  constructor(
    readonly program: Program,
    readonly clock: KitClock,
    readonly store: Store,
    private readonly mocks: Map<string, MockUpstream>,
    // Paths in traces and messages point at the test's own files, not the kit's copy.
    private readonly relocate: (text: string) => string,
    private readonly cleanup: () => Promise<void>,
  ) {}

  // The mock of a named upstream.
  upstream(name: string): MockUpstream {
    const m = this.mocks.get(name)
    if (!m) throw new Error(`no upstream '${name}' in the policies (upstreams: ${[...this.mocks.keys()].join(', ') || 'none'})`)
    return m
  }

  // The request, with the caller's credentials, as of the clock's time now.
  async prepare(spec: string, opts: RequestOptions = {}): Promise<Prepared> {
    const { method, url } = target(spec, opts)
    const headers = new Headers(opts.headers as ConstructorParameters<typeof Headers>[0])
    if (!headers.has('host')) headers.set('host', new URL(url).host)
    if (opts.session !== undefined) headers.set('authorization', `Bearer ${opts.session}`)
    const body = bodyOf(opts.body, headers)
    // As an HTTP client sends it: with its length (a `limit body` then refuses it up front), unless
    // the test asks for a chunked body.
    if (body !== null && !headers.has('content-length') && !headers.has('transfer-encoding')) headers.set('content-length', String(body.byteLength))
    let identified: Awaited<ReturnType<typeof identify>>
    try {
      identified = await identify(this.program, new Request(url, { method, headers, body }), opts, this.clock.now())
    } catch (err) {
      throw new Error(this.relocate((err as Error).message))
    }
    const { request, peer } = identified
    const signedBody = request.body === null ? null : new Uint8Array(await request.arrayBuffer())
    return { method, url: request.url, headers: request.headers, body: signedBody, peer: { ip: opts.ip ?? '127.0.0.1', tls: false, ...peer } }
  }

  // Sends a prepared request (again, if it was sent before: a replay).
  async send(p: Prepared): Promise<KitResponse> {
    const req = new Request(p.url, { method: p.method, headers: p.headers, body: p.body })
    const explained = await this.program.explain(req, p.peer)
    const trace = explained.trace
    // An answer to HEAD has no body on the wire (the server drops it); nor has it here.
    const response =
      p.method === 'HEAD' && explained.response.body !== null
        ? new Response(null, { status: explained.response.status, statusText: explained.response.statusText, headers: explained.response.headers })
        : explained.response
    const relocated = this.relocateTrace(trace)
    let text: Promise<string> | null = null
    return {
      status: response.status,
      headers: response.headers,
      response,
      trace: relocated,
      text: () => (text ??= response.text()),
      json: async () => JSON.parse(await (text ??= response.text())),
      explain: () => renderTrace(relocated),
    }
  }

  // `GET /path` (the method defaults to GET) as `opts` says: headers, body, caller.
  async request(spec: string, opts: RequestOptions = {}): Promise<KitResponse> {
    return this.send(await this.prepare(spec, opts))
  }

  // Logs in through the policies' `login` route (its verify upstream must accept `credentials`,
  // sent as JSON); resolves with the tokens, rejects with the answer when the login is refused.
  async login(credentials: unknown, opts: RequestOptions = {}): Promise<LoginResult> {
    const route = factsOf(this.program)?.routes.find((r) => r.route.stageNames.proxy.includes('login'))
    if (!route) throw new Error('the policies have no `login` route')
    const method = route.route.methods?.[0] ?? 'POST'
    if (/[{*]/.test(route.route.pattern)) throw new Error(`the login route ${route.route.pattern} has parameters: call gw.request on it instead`)
    const r = await this.request(`${method} ${route.route.pattern}`, { ...opts, body: credentials, host: opts.host ?? route.route.host ?? undefined })
    const text = await r.text()
    if (r.status !== 200) throw new Error(`the login was refused: ${r.status} ${text}\n${r.explain()}`)
    const tokens = JSON.parse(text) as { access_token: string; refresh_token: string }
    return { accessToken: tokens.access_token, refreshToken: tokens.refresh_token, response: r }
  }

  // Stops the mocks, releases the program (and a Redis store), removes the kit's files.
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.program.dispose()
    for (const m of this.mocks.values()) m.stop()
    await this.cleanup()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  private relocateTrace(t: DecisionTrace): DecisionTrace {
    const at = <T extends { at: string }>(s: T): T => ({ ...s, at: this.relocate(s.at) })
    return {
      ...t,
      route: t.route && { ...t.route, location: this.relocate(t.route.location) },
      steps: t.steps.map(at),
      notReached: t.notReached.map(at),
    }
  }
}

// The nearest node_modules above `dir` (scripts in a copied directory still find their packages).
function nodeModulesAbove(dir: string): string | null {
  for (let d = dir; ; d = dirname(d)) {
    const nm = join(d, 'node_modules')
    if (existsSync(nm)) return nm
    if (dirname(d) === d) return null
  }
}

// The policy directory with the test's files written into it: a copy, since the policies' own
// directory is never written to. Paths in messages are mapped back to the real directory.
function withFiles(dir: string, files: Record<string, string>): { dir: string; relocate: (s: string) => string; remove: () => void } {
  const real = resolve(dir)
  const root = mkdtempSync(join(tmpdir(), 'portcullis-kit-'))
  const remove = () => rmSync(root, { recursive: true, force: true })
  try {
    const copy = join(root, 'p', basename(real))
    cpSync(real, copy, { recursive: true, dereference: true, filter: (src) => basename(src) !== 'node_modules' && basename(src) !== '.git' })
    const nm = nodeModulesAbove(real)
    if (nm) symlinkSync(nm, join(root, 'node_modules'), 'dir')
    for (const [name, content] of Object.entries(files)) {
      const path = resolve(copy, name)
      const rel = relative(root, path)
      if (rel.startsWith(`..${sep}`) || rel === '..' || isAbsolute(rel) || rel.startsWith(`node_modules`))
        throw new Error(`files: '${name}' is too far outside the policy directory ${dir}`)
      mkdirSync(dirname(path), { recursive: true })
      writeFileSync(path, content)
    }
    const from = [`${displayPath(copy)}${sep}`, `${copy}${sep}`]
    const to = `${displayPath(real)}${sep}`
    return { dir: copy, relocate: (s) => from.reduce((acc, f) => acc.replaceAll(f, to), s), remove }
  } catch (err) {
    remove()
    throw err
  }
}

// Builds the policies under `dir` for a test. Rejects with the diagnostics `gateway check`
// prints (file:line:col) when they do not check.
export async function loadGateway(dir: string, opts: LoadOptions = {}): Promise<Gateway> {
  const clock = new KitClock(opts.now ?? Date.now())
  const cleanups: (() => void | Promise<void>)[] = []
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await c()
  }
  const mocks = new Map<string, MockUpstream>()
  try {
    let buildDir = dir
    let relocate = (s: string) => s
    if (opts.files && Object.keys(opts.files).length) {
      const w = withFiles(dir, opts.files)
      cleanups.push(w.remove)
      buildDir = w.dir
      relocate = w.relocate
    }
    let store: Store
    if (opts.store === undefined || opts.store === 'memory') store = memoryStore({ now: clock.now })
    else {
      const prefix = opts.store.prefix ?? `portcullis-kit:${crypto.randomUUID()}:`
      const redis = redisStore(opts.store.redis, { prefix })
      cleanups.push(() => redis.close())
      try {
        await redis.ping()
      } catch (err) {
        throw new Error(`the kit's Redis store at ${opts.store.redis} does not answer: ${(err as Error).message}`)
      }
      store = redis
    }
    cleanups.push(() => mocks.forEach((m) => m.stop()))
    const given = opts.upstreams ?? {}
    const built = await buildProgram(buildDir, {
      env: (opts.env ?? process.env) as Env,
      store,
      now: clock.now,
      healthChecks: false,
      explain: true,
      testJwtKey: testJwtKey(),
      // Every target of a named upstream goes to its mock (its base path kept); a `proxy URL`
      // target goes to the mock named by its origin when the test names it, else as written.
      retarget(upstream, url) {
        const name = upstream ?? url.origin
        if (upstream === null && !Object.hasOwn(given, name)) return url
        let m = mocks.get(name)
        if (!m) mocks.set(name, (m = new MockUpstream(name, given[name] ?? opts.otherUpstreams ?? 'absent')))
        return new URL(`${url.pathname}${url.search}`, m.url)
      },
    })
    if (built.diagnostics) throw new Error(relocate(renderDiagnostics(built.diagnostics).trimEnd()))
    const unknown = Object.keys(given).filter((n) => !mocks.has(n))
    if (unknown.length) {
      await built.program.dispose()
      throw new Error(
        `upstreams: the policies declare no upstream ${unknown.map((n) => `'${n}'`).join(', ')} (declared: ${[...mocks.keys()].join(', ') || 'none'})`,
      )
    }
    return new Gateway(built.program, clock, store, mocks, relocate, cleanup)
  } catch (err) {
    await cleanup()
    throw err
  }
}
