// The demo backend for the example policies in this directory.
//
//   bun run demo-upstream                      # orders-1 :9001, orders-2 :9002, users :9003, static :9300
//   bun run demo-upstream --base-port 19001    # 19001, 19002, 19003, 19300 (or DEMO_BASE_PORT=19001)
//   bun run demo-upstream --host 0.0.0.0       # or DEMO_HOST; default 127.0.0.1
//
// Every instance echoes what it received as pretty JSON: its instance name, the
// method, path, query, headers and (a prefix of) the body, so you can see what
// the gateway did to a request: rewrites, set/removed headers and query
// parameters, X-Forwarded-*, X-Request-Id. A few paths behave specially:
//   GET /healthz          -> 200 {"ok":true}
//   …/slow?ms=N           -> sleeps N ms (default 1000, at most 60000), then echoes
//   …/status/NNN          -> answers status NNN (200-599) with the echo as body
//   …/events?count=N&every=MS
//                         -> a text/event-stream of N events (default 5, at most 1000), the
//                            first at once, then one every MS ms (default 1000, at most 60000)
//   …/ws                  -> a WebSocket echo: the first message is the JSON echo of the
//                            handshake request, then every message comes back as sent (text
//                            as text, binary as binary); without an upgrade, 426 and the echo
//   POST /internal/verify-login
//                         -> the session verifier of sessions.policy: a JSON or form body with
//                            username ada / password lovelace (or grace / hopper) gets 200 and
//                            the user info as JSON; anything else 401
// (`…/` means any prefix, so `/orders/slow?ms=500` works after a rewrite too.)
// Every answer carries `X-Upstream-Instance: NAME` and `X-Powered-By:
// portcullis-demo-upstream` (so `remove response header` has something to remove).
//
// This file is not a policy (the gateway only loads `*.policy`). Importing it
// starts nothing; tests call `startDemoUpstreams({ basePort: 0 })` to get the
// same backends on free ports.

export type DemoInstance = 'orders-1' | 'orders-2' | 'users' | 'static'

export interface DemoUpstreamOptions {
  /** Address to bind; default 127.0.0.1. */
  hostname?: string
  /**
   * Port of orders-1; the others follow: orders-2 = base+1, users = base+2,
   * static = base+299 (so 9001 gives 9001, 9002, 9003, 9300). 0 means every
   * instance on a free port chosen by the OS. Default 9001.
   */
  basePort?: number
  /** Explicit ports per instance; win over `basePort`. */
  ports?: Partial<Record<DemoInstance, number>>
  /** Print one `… listening on http://HOST:PORT` line per listener; default false. */
  log?: boolean
}

export interface DemoUpstream {
  name: DemoInstance
  service: 'orders' | 'users' | 'static'
  port: number
  url: string // http://HOST:PORT
  server: Bun.Server<DemoSocket>
}

/** What a WebSocket of the `…/ws` echo carries: the echo of its handshake, sent as its first message. */
export interface DemoSocket {
  hello: string
}

export interface EchoBody {
  instance: DemoInstance
  service: DemoUpstream['service']
  method: string
  path: string
  query: Record<string, string | string[]>
  headers: Record<string, string>
  body: string | null // the first BODY_ECHO_LIMIT characters of the body, null when empty
  bodyBytes: number
  sleptMs?: number
}

const instances: readonly { name: DemoInstance; service: DemoUpstream['service']; offset: number }[] = [
  { name: 'orders-1', service: 'orders', offset: 0 },
  { name: 'orders-2', service: 'orders', offset: 1 },
  { name: 'users', service: 'users', offset: 2 },
  { name: 'static', service: 'static', offset: 299 },
]

const BODY_ECHO_LIMIT = 2048
const MAX_SLEEP_MS = 60_000
const MAX_EVENTS = 1000
const NO_BODY_STATUSES = new Set([204, 205, 304])

function queryObject(params: URLSearchParams): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const [k, v] of params) {
    const prev = out[k]
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v]
  }
  return out
}

function headerObject(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {}
  for (const name of [...headers.keys()].sort()) out[name] = headers.get(name) ?? ''
  return out
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms)
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer)
        resolve()
      },
      { once: true },
    )
  })
}

// A number from the query, truncated and clamped; `fallback` when absent or not a number.
function queryNumber(params: URLSearchParams, key: string, fallback: number, min: number, max: number): number {
  const asked = Number(params.get(key) ?? fallback)
  return Number.isFinite(asked) ? Math.min(Math.max(Math.trunc(asked), min), max) : fallback
}

// Server-sent events: `count` events, the first at once, then one every `everyMs`; stops
// early when the client goes away.
function eventStream(name: DemoInstance, path: string, count: number, everyMs: number, signal: AbortSignal): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder()
  let seq = 0
  let cancelled = false
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (seq > 0) await sleep(everyMs, signal)
      if (cancelled) return
      if (signal.aborted) return controller.close()
      seq++
      const data = JSON.stringify({ instance: name, path, seq, of: count, time: new Date().toISOString() })
      controller.enqueue(encoder.encode(`id: ${seq}\nevent: tick\ndata: ${data}\n\n`))
      if (seq >= count) controller.close()
    },
    cancel() {
      cancelled = true
    },
  })
}

// Demo users of the session verifier (never do this for real).
const DEMO_USERS: Record<string, { password: string; info: Record<string, unknown> }> = {
  ada: { password: 'lovelace', info: { id: 'u-1001', username: 'ada', name: 'Ada Lovelace', roles: ['admin'] } },
  grace: { password: 'hopper', info: { id: 'u-1002', username: 'grace', name: 'Grace Hopper', roles: ['reader'] } },
}

function verifyLogin(req: Request, bytes: Uint8Array): Response {
  const text = new TextDecoder().decode(bytes)
  let creds: Record<string, unknown> = {}
  if (req.headers.get('content-type')?.startsWith('application/x-www-form-urlencoded')) creds = Object.fromEntries(new URLSearchParams(text))
  else {
    try {
      creds = JSON.parse(text) as Record<string, unknown>
    } catch {}
  }
  const user = typeof creds.username === 'string' && Object.hasOwn(DEMO_USERS, creds.username) ? DEMO_USERS[creds.username] : undefined
  if (!user || creds.password !== user.password) return Response.json({ error: 'invalid credentials' }, { status: 401 })
  return Response.json(user.info)
}

function handler(name: DemoInstance, service: DemoUpstream['service']) {
  const baseHeaders = {
    'content-type': 'application/json; charset=utf-8',
    'x-upstream-instance': name,
    'x-powered-by': 'portcullis-demo-upstream',
  }
  const json = (status: number, value: unknown): Response =>
    new Response(NO_BODY_STATUSES.has(status) ? null : JSON.stringify(value, null, 2) + '\n', { status, headers: baseHeaders })

  return async (req: Request, server: Bun.Server<DemoSocket>): Promise<Response | undefined> => {
    const url = new URL(req.url)
    const path = url.pathname
    if (path === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) return new Response('{"ok":true}\n', { headers: baseHeaders })

    const bytes = req.body ? new Uint8Array(await req.arrayBuffer()) : new Uint8Array(0)
    if (path === '/internal/verify-login' && req.method === 'POST') return verifyLogin(req, bytes)
    const text = bytes.length > 0 ? new TextDecoder().decode(bytes.subarray(0, BODY_ECHO_LIMIT * 4)).slice(0, BODY_ECHO_LIMIT) : null
    const echo: EchoBody = {
      instance: name,
      service,
      method: req.method,
      path,
      query: queryObject(url.searchParams),
      headers: headerObject(req.headers),
      body: text,
      bodyBytes: bytes.length,
    }

    if (/(?:^|\/)ws$/.test(path)) {
      const hello = JSON.stringify(echo, null, 2)
      const upgrade = req.headers.get('upgrade')?.toLowerCase() === 'websocket'
      if (upgrade && server.upgrade(req, { data: { hello }, headers: { 'x-upstream-instance': name } })) return undefined
      return new Response(hello + '\n', { status: 426, headers: { ...baseHeaders, upgrade: 'websocket', connection: 'Upgrade' } })
    }

    if (/(?:^|\/)events$/.test(path)) {
      const count = queryNumber(url.searchParams, 'count', 5, 1, MAX_EVENTS)
      const everyMs = queryNumber(url.searchParams, 'every', 1000, 0, MAX_SLEEP_MS)
      const headers = { ...baseHeaders, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' }
      return new Response(eventStream(name, path, count, everyMs, req.signal), { headers })
    }

    if (/(?:^|\/)slow$/.test(path)) {
      const ms = queryNumber(url.searchParams, 'ms', 1000, 0, MAX_SLEEP_MS)
      await sleep(ms, req.signal)
      echo.sleptMs = ms
    }

    const status = /(?:^|\/)status\/(\d{3})$/.exec(path)
    if (status) {
      const code = Number(status[1])
      if (code < 200 || code > 599) return json(400, { error: `status must be 200-599, got ${code}`, ...echo })
      return json(code, echo)
    }
    return json(200, echo)
  }
}

function portFor(inst: (typeof instances)[number], opts: DemoUpstreamOptions): number {
  const explicit = opts.ports?.[inst.name]
  if (explicit !== undefined) return explicit
  const base = opts.basePort ?? 9001
  return base === 0 ? 0 : base + inst.offset
}

/** Starts orders-1, orders-2, users and static; stops the ones already started if one fails to bind. */
export function startDemoUpstreams(opts: DemoUpstreamOptions = {}): DemoUpstream[] {
  const hostname = opts.hostname ?? '127.0.0.1'
  const started: DemoUpstream[] = []
  try {
    for (const inst of instances) {
      const server = Bun.serve({
        hostname,
        port: portFor(inst, opts),
        // An event stream may be silent for up to a minute between events; Bun's default
        // cuts a connection after 10 silent seconds.
        idleTimeout: 75,
        fetch: handler(inst.name, inst.service),
        websocket: {
          data: {} as DemoSocket,
          open: (ws) => void ws.send(ws.data.hello),
          message: (ws, message) => void ws.send(message),
        },
      })
      const port = server.port ?? 0
      const host = hostname.includes(':') ? `[${hostname}]` : hostname
      const up: DemoUpstream = { name: inst.name, service: inst.service, port, url: `http://${host}:${port}`, server }
      started.push(up)
      if (opts.log) console.log(`demo upstream ${inst.name} (${inst.service}) listening on ${up.url}`)
    }
  } catch (err) {
    for (const s of started) void s.server.stop(true)
    throw err
  }
  return started
}

/** Stops every server (open connections included). */
export async function stopDemoUpstreams(list: readonly DemoUpstream[]): Promise<void> {
  await Promise.all(list.map((s) => s.server.stop(true)))
}

function parseCli(argv: readonly string[]): DemoUpstreamOptions {
  const opts: DemoUpstreamOptions = { log: true }
  const env = process.env
  let base = env.DEMO_BASE_PORT
  let host = env.DEMO_HOST
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined]
    const value = (): string => {
      const v = inline ?? argv[++i]
      if (v === undefined) throw new Error(`${flag} needs a value`)
      return v
    }
    if (flag === '--base-port') base = value()
    else if (flag === '--host') host = value()
    else if (flag === '-h' || flag === '--help') {
      console.log('usage: bun run demo-upstream [--base-port N (env DEMO_BASE_PORT, default 9001)] [--host ADDR (env DEMO_HOST, default 127.0.0.1)]')
      process.exit(0)
    } else throw new Error(`unknown option ${arg}`)
  }
  if (base !== undefined) {
    const n = Number(base)
    if (!/^\d+$/.test(base) || n < 0 || n + 299 > 65535) throw new Error(`invalid base port ${JSON.stringify(base)} (0-65236)`)
    opts.basePort = n
  }
  if (host !== undefined) opts.hostname = host
  return opts
}

if (import.meta.main) {
  let servers: DemoUpstream[]
  try {
    servers = startDemoUpstreams(parseCli(process.argv.slice(2)))
  } catch (err) {
    console.error(`demo-upstream: ${err instanceof Error ? err.message : String(err)}`)
    process.exit(2)
  }
  const shutdown = (): void => {
    void stopDemoUpstreams(servers).then(() => process.exit(0))
  }
  process.on('SIGINT', shutdown)
  process.on('SIGTERM', shutdown)
}
