// Small HTTP helpers for the end-to-end tests: raw response parsing and gateway-error checks.
import { expect } from 'bun:test'
import { GENERATED_REQUEST_ID } from '../../src/runtime/request-id.ts'
import { rawRequest } from './gateway.ts'

// A request id the gateway made (src/runtime/request-id.ts).
export const REQUEST_ID = GENERATED_REQUEST_ID

export interface RawResponse {
  status: number
  headers: Map<string, string[]> // lower-case names
  header(name: string): string | undefined // first value
  body: string
}

function dechunk(body: string): string {
  let out = ''
  let rest = body
  for (let guard = 0; guard < 100_000; guard++) {
    const nl = rest.indexOf('\r\n')
    if (nl === -1) break
    const size = parseInt(rest.slice(0, nl), 16)
    if (!Number.isFinite(size) || size === 0) break
    out += rest.slice(nl + 2, nl + 2 + size)
    rest = rest.slice(nl + 2 + size + 2)
  }
  return out
}

// Parses one HTTP/1.1 response (Content-Length or chunked body).
export function parseRaw(text: string): RawResponse {
  const end = text.indexOf('\r\n\r\n')
  if (end === -1) throw new Error(`not an HTTP response: ${JSON.stringify(text.slice(0, 200))}`)
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n')
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine!)?.[1])
  const headers = new Map<string, string[]>()
  for (const line of lines) {
    const colon = line.indexOf(':')
    const name = line.slice(0, colon).trim().toLowerCase()
    const list = headers.get(name) ?? []
    list.push(line.slice(colon + 1).trim())
    headers.set(name, list)
  }
  let body = text.slice(end + 4)
  if (headers.get('transfer-encoding')?.[0]?.toLowerCase() === 'chunked') body = dechunk(body)
  else if (headers.has('content-length')) body = body.slice(0, Number(headers.get('content-length')![0]))
  return { status, headers, header: (n) => headers.get(n.toLowerCase())?.[0], body }
}

// Sends `METHOD target` with the given header lines (Host defaults to the gateway's;
// `Connection: close` is added unless a Connection line is given, which must then hold `close`).
export async function raw(base: string, method: string, target: string, headerLines: string[] = [], body = ''): Promise<RawResponse> {
  const host = headerLines.some((l) => /^host:/i.test(l)) ? [] : [`Host: ${new URL(base).host}`]
  const length = body ? [`Content-Length: ${Buffer.byteLength(body)}`] : []
  const close = headerLines.some((l) => /^connection:/i.test(l)) ? [] : ['Connection: close']
  const text = [`${method} ${target} HTTP/1.1`, ...host, ...headerLines, ...length, ...close, '', body].join('\r\n')
  return parseRaw(await rawRequest(base, text))
}

export interface Problem {
  type: string
  title: string
  status: number
  detail: string
  instance: string
}

function checkProblem(
  status: number,
  code: string,
  got: { status: number; contentType?: string | null; gatewayError?: string | null; requestId?: string | null; body: string },
): Problem {
  expect(got.status).toBe(status)
  expect(got.contentType).toBe('application/problem+json')
  expect(got.gatewayError).toBe(code)
  const body = JSON.parse(got.body) as Problem
  expect(Object.keys(body).sort()).toEqual(['detail', 'instance', 'status', 'title', 'type'])
  expect(body.status).toBe(status)
  expect(body.type).toContain(code)
  expect(body.title.length).toBeGreaterThan(0)
  expect(body.detail.length).toBeGreaterThan(0)
  expect(body.instance).toMatch(GENERATED_REQUEST_ID)
  expect(body.instance).toBe(got.requestId!)
  return body
}

// A gateway error: status, `Gateway-Error: code`, RFC 9457 body whose instance is the request id.
export async function expectProblem(res: Response, status: number, code: string): Promise<Problem> {
  return checkProblem(status, code, {
    status: res.status,
    contentType: res.headers.get('content-type'),
    gatewayError: res.headers.get('gateway-error'),
    requestId: res.headers.get('x-request-id'),
    body: await res.text(),
  })
}

export function expectRawProblem(res: RawResponse, status: number, code: string): Problem {
  return checkProblem(status, code, {
    status: res.status,
    contentType: res.header('content-type'),
    gatewayError: res.header('gateway-error'),
    requestId: res.header('x-request-id'),
    body: res.body,
  })
}

// What the echo upstream of the harness reports.
export interface Echo {
  method: string
  path: string
  raw: string
  query: string
  headers: Record<string, string>
  body: string
}

// One client connection held open across requests, for keep-alive and framing checks.
export class RawConnection {
  private buf = Buffer.alloc(0)
  private waiters: (() => void)[] = []
  closed = false
  private constructor(private socket: Bun.Socket<undefined> | null) {}

  static async open(base: string): Promise<RawConnection> {
    const { hostname, port } = new URL(base)
    const conn = new RawConnection(null)
    const wake = () => conn.waiters.splice(0).forEach((w) => w())
    conn.socket = await Bun.connect({
      hostname,
      port: Number(port),
      socket: {
        data(_s, d) {
          conn.buf = Buffer.concat([conn.buf, d])
          wake()
        },
        close() {
          conn.closed = true
          wake()
        },
        error() {
          conn.closed = true
          wake()
        },
      },
    })
    return conn
  }

  write(text: string | Uint8Array): void {
    this.socket!.write(text)
  }

  private async until(ready: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!ready()) {
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what}; got so far: ${JSON.stringify(this.buf.toString('latin1').slice(0, 400))}`)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - Date.now()))
        this.waiters.push(() => {
          clearTimeout(t)
          resolve()
        })
      })
    }
  }

  // The length of one whole response at the start of the buffer, or -1 while incomplete.
  private responseLength(): number {
    const end = this.buf.indexOf('\r\n\r\n')
    if (end === -1) return -1
    const head = this.buf.toString('latin1', 0, end)
    const status = Number(head.slice(9, 12))
    if (status === 204 || status === 304) return end + 4
    const cl = /\r\ncontent-length: *(\d+)/i.exec(head)
    if (cl) return this.buf.length >= end + 4 + Number(cl[1]) ? end + 4 + Number(cl[1]) : -1
    if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
      const term = this.buf.indexOf('\r\n0\r\n\r\n', end)
      return term === -1 ? -1 : term + 7
    }
    return this.closed ? this.buf.length : -1
  }

  // The next whole response on the connection.
  async response(timeoutMs = 3_000): Promise<RawResponse> {
    await this.until(() => this.responseLength() !== -1 || this.closed, timeoutMs, 'a whole response')
    const n = this.responseLength()
    if (n === -1) throw new Error(`the connection closed inside a response: ${JSON.stringify(this.buf.toString('latin1').slice(0, 400))}`)
    const text = this.buf.toString('latin1', 0, n)
    this.buf = this.buf.subarray(n)
    return parseRaw(text)
  }

  // Everything left once the peer closes (throws if it stays open).
  async rest(timeoutMs = 3_000): Promise<string> {
    await this.until(() => this.closed, timeoutMs, 'the connection to close')
    return this.buf.toString('latin1')
  }

  // True when nothing more arrives and the connection stays open for `ms`.
  async quietFor(ms: number): Promise<boolean> {
    const before = this.buf.length
    await this.until(() => this.closed || this.buf.length > before, ms, 'more bytes').catch(() => {})
    return !this.closed && this.buf.length === before
  }

  close(): void {
    this.socket?.end()
  }
}
