// Test harness: real upstream servers on 127.0.0.1 and the real gateway as a child process.
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import type { Server } from 'bun'
import type { Echo } from './http.ts'

export const ROOT = resolve(import.meta.dir, '../..')
export const BUN = process.execPath
export const ADMIN_TOKEN = 'test-admin-token-0123456789'

export interface Upstream {
  url: string
  port: number
  server: Server<undefined>
  stop(): void
}

// An upstream that answers with `handler`, or by echoing what it received as JSON.
export function startUpstream(handler?: (req: Request) => Response | Promise<Response>): Upstream {
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    idleTimeout: 30,
    fetch: handler ?? echo,
  })
  return { url: `http://127.0.0.1:${server.port}`, port: server.port!, server, stop: () => void server.stop(true) }
}

export async function echo(req: Request): Promise<Response> {
  return Response.json(await echoOf(req))
}

// What a request looked like when it reached an upstream.
export async function echoOf(req: Request): Promise<Echo> {
  const url = new URL(req.url)
  const body = req.body ? await req.text() : ''
  const raw = req.url.slice(req.url.indexOf('/', 8))
  return { method: req.method, path: url.pathname, raw, query: url.search.slice(1), headers: Object.fromEntries(req.headers), body }
}

// An echo upstream that also keeps every request it received in `hits` (did it reach it?).
export function startRecordingUpstream(hits: Echo[]): Upstream {
  return startUpstream(async (req) => {
    const e = await echoOf(req)
    hits.push(e)
    return Response.json(e)
  })
}

// A port that refuses connections, for a dead upstream or store: 1, 2, 3 or 4 (`n` picks
// one, for tests that need several). Not one the OS gave out and took back: with tests running
// in parallel, the next server started anywhere may be given that port, and the dead target
// answers. The tests' servers listen on port 0, which the OS takes from the ephemeral range
// (32768 and up), never from these; nothing on a test machine serves them.
export function closedPort(n: 0 | 1 | 2 | 3 = 0): number {
  return 1 + n
}

// A port free to listen on now: the OS gave it, then it was released.
export function freePort(): number {
  const probe = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response() })
  const port = probe.port!
  probe.stop(true)
  return port
}

// A temporary policy directory from a map of relative path → text.
export function policyDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-test-'))
  writePolicies(dir, files)
  return dir
}

export function writePolicies(dir: string, files: Record<string, string>): void {
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true })
    writeFileSync(join(dir, name), text)
  }
}

export interface RunningGateway {
  url: string
  adminUrl: string
  proc: Bun.Subprocess<'ignore', 'pipe', 'pipe'>
  stdout: string[] // lines
  stderr: string[]
  fetch(path: string, init?: RequestInit): Promise<Response>
  admin(path: string, init?: RequestInit): Promise<Response>
  waitFor(stream: 'stdout' | 'stderr', pattern: RegExp, timeoutMs?: number): Promise<string>
  accessLog(): Record<string, unknown>[]
  stop(signal?: NodeJS.Signals): Promise<number>
}

function collect(stream: ReadableStream<Uint8Array>, into: string[]): void {
  void (async () => {
    const decoder = new TextDecoder()
    let buf = ''
    for await (const chunk of stream) {
      buf += decoder.decode(chunk, { stream: true })
      let nl
      while ((nl = buf.indexOf('\n')) !== -1) {
        into.push(buf.slice(0, nl))
        buf = buf.slice(nl + 1)
      }
    }
    if (buf) into.push(buf)
  })()
}

async function waitFor(lines: string[], pattern: RegExp, timeoutMs: number, what: () => string): Promise<string> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const hit = lines.find((l) => pattern.test(l))
    if (hit) return hit
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}; output so far:\n${what()}`)
    await Bun.sleep(10)
  }
}

export async function startGateway(dir: string, args: string[] = [], env: Record<string, string> = {}): Promise<RunningGateway> {
  const proc = Bun.spawn(
    [
      BUN,
      join(ROOT, 'src/cli/main.ts'),
      '--policies',
      dir,
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--admin-port',
      '0',
      '--admin-token',
      ADMIN_TOKEN,
      ...args,
    ],
    {
      cwd: ROOT,
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
      env: { ...process.env, GATEWAY_LOG_FORMAT: 'json', ...env },
    },
  )
  const stdout: string[] = []
  const stderr: string[] = []
  collect(proc.stdout, stdout)
  collect(proc.stderr, stderr)
  const dump = () => `stdout:\n${stdout.join('\n')}\nstderr:\n${stderr.join('\n')}`
  const ready = await Promise.race([
    waitFor(stdout, /listening on http:\/\//, 10_000, dump),
    proc.exited.then((code) => {
      throw new Error(`gateway exited with ${code} before it was ready\n${dump()}`)
    }),
  ])
  const url = /listening on (http:\/\/\S+)/.exec(ready)![1]!
  const adminLine = await waitFor(stderr, /admin API on http:\/\//, 5_000, dump)
  const adminUrl = /admin API on (http:\/\/[^\s"]+)/.exec(adminLine)![1]!
  return {
    url,
    adminUrl,
    proc,
    stdout,
    stderr,
    fetch: (path, init) => fetch(`${url}${path}`, { redirect: 'manual', ...init }),
    admin: (path, init) => fetch(`${adminUrl}${path}`, init),
    waitFor: (stream, pattern, timeoutMs = 5_000) => waitFor(stream === 'stdout' ? stdout : stderr, pattern, timeoutMs, dump),
    accessLog: () => stdout.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>),
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null) proc.kill(signal)
      const code = await Promise.race([proc.exited, Bun.sleep(5_000).then(() => -1)])
      if (code === -1) proc.kill('SIGKILL')
      return code
    },
  }
}

// Runs the CLI to completion (check, routes, bad flags).
export async function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn([BUN, join(ROOT, 'src/cli/main.ts'), ...args], {
    cwd: ROOT,
    stdout: 'pipe',
    stderr: 'pipe',
    stdin: 'ignore',
    env: { ...process.env, ...env },
  })
  const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000)
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  clearTimeout(timer)
  return { code, stdout, stderr }
}

// A raw HTTP/1.1 exchange, for requests fetch() refuses to send (two Host lines, odd targets).
export async function rawRequest(url: string, text: string): Promise<string> {
  const { hostname, port } = new URL(url)
  const chunks: Uint8Array[] = []
  const { promise, resolve: done } = Promise.withResolvers<void>()
  const socket = await Bun.connect({
    hostname,
    port: Number(port),
    socket: {
      data: (_s, d) => void chunks.push(new Uint8Array(d)),
      close: () => done(),
      error: () => done(),
    },
  })
  socket.write(text)
  const timer = setTimeout(() => socket.end(), 3_000)
  await promise
  clearTimeout(timer)
  return Buffer.concat(chunks).toString('utf8')
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true })
}
