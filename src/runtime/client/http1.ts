// An incremental HTTP/1.1 response reader (RFC 9112): status line, fields, and a body framed
// by Content-Length, chunked coding or the end of the connection. Strict where leniency
// would let an upstream smuggle a second answer: no obs-fold, no bare LF, one length.
export interface ResponseHead {
  status: number
  reason: string
  minor: 0 | 1
  fields: [string, string][] // names as sent
  keepAlive: boolean
  upgrade: boolean
}

export interface ResponseSink {
  head(h: ResponseHead, rest: Buffer): boolean // false: stop reading (an upgrade)
  body(chunk: Buffer): void
  end(): void
  failed(reason: string): void
}

const MAX_HEAD = 64 * 1024
const MAX_LINE = 4096
const MAX_TRAILERS = 16 * 1024
// RFC 9110 tchar, by character code.
const TCHAR = new Uint8Array(128)
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TCHAR[c.charCodeAt(0)] = 1
const isOws = (c: number): boolean => c === 32 || c === 9
const isDigit = (c: number): boolean => c >= 48 && c <= 57

// `HTTP/1.0` or `HTTP/1.1`, a space, three digits (the first 1-9), then the end or a space and
// a reason without control characters but HTAB.
function statusLine(text: string, eol: number): boolean {
  if (eol < 12 || !text.startsWith('HTTP/1.')) return false
  const minor = text.charCodeAt(7)
  if ((minor !== 48 && minor !== 49) || text.charCodeAt(8) !== 32) return false
  const d = text.charCodeAt(9)
  if (d < 49 || d > 57 || !isDigit(text.charCodeAt(10)) || !isDigit(text.charCodeAt(11))) return false
  if (eol === 12) return true
  if (text.charCodeAt(12) !== 32) return false
  for (let i = 13; i < eol; i++) {
    const c = text.charCodeAt(i)
    if ((c < 32 && c !== 9) || c === 127) return false
  }
  return true
}

// 1 to 15 decimal digits.
function decimal(t: string): boolean {
  if (t.length === 0 || t.length > 15) return false
  for (let i = 0; i < t.length; i++) if (!isDigit(t.charCodeAt(i))) return false
  return true
}
const CRLF = Buffer.from('\r\n')
const HEAD_END = Buffer.from('\r\n\r\n')

type Mode = 'head' | 'length' | 'chunk-size' | 'chunk-data' | 'chunk-crlf' | 'trailers' | 'close' | 'done' | 'failed'

export class ResponseReader {
  private mode: Mode = 'head'
  private pending: Buffer | null = null // an incomplete head or line
  private remaining = 0
  private trailerBytes = 0
  // Set before the first byte: the request was HEAD, so no answer has a body.
  noBody = false
  // Bytes that arrived after the answer ended: the connection can't be reused.
  extra = false

  constructor(private readonly sink: ResponseSink) {}

  get done(): boolean {
    return this.mode === 'done'
  }
  // Only `close` framing ends with the connection; any other mode ending now is a cut.
  get endsWithClose(): boolean {
    return this.mode === 'close'
  }
  get inHead(): boolean {
    return this.mode === 'head'
  }

  feed(chunk: Buffer): void {
    let buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk
    this.pending = null
    while (buf.length > 0) {
      switch (this.mode) {
        case 'head': {
          const end = buf.indexOf(HEAD_END)
          if (end === -1 ? buf.length > MAX_HEAD : end > MAX_HEAD) return this.fail('the response head is larger than 64 KiB')
          if (end === -1) {
            this.pending = buf
            return
          }
          const rest = buf.subarray(end + 4)
          if (!this.readHead(buf.toString('latin1', 0, end), rest)) return
          buf = rest
          break
        }
        case 'length': {
          const n = Math.min(this.remaining, buf.length)
          this.remaining -= n
          if (this.remaining === 0) this.mode = 'done'
          this.sink.body(n === buf.length ? buf : buf.subarray(0, n))
          if (this.mode === 'done') this.finish(buf.length > n)
          return
        }
        case 'close':
          this.sink.body(buf)
          return
        case 'chunk-size': {
          const nl = buf.indexOf(CRLF)
          if (nl === -1) return this.keepLine(buf)
          const line = buf.toString('latin1', 0, nl)
          const semi = line.indexOf(';')
          const hex = (semi === -1 ? line : line.slice(0, semi)).trimEnd()
          if (!/^[0-9A-Fa-f]{1,12}$/.test(hex)) return this.fail('a chunk size is malformed')
          this.remaining = parseInt(hex, 16)
          this.mode = this.remaining === 0 ? 'trailers' : 'chunk-data'
          buf = buf.subarray(nl + 2)
          break
        }
        case 'chunk-data': {
          const n = Math.min(this.remaining, buf.length)
          this.remaining -= n
          this.sink.body(n === buf.length ? buf : buf.subarray(0, n))
          if (this.remaining === 0) this.mode = 'chunk-crlf'
          buf = buf.subarray(n)
          break
        }
        case 'chunk-crlf': {
          if (buf.length < 2) return this.keepLine(buf)
          if (buf[0] !== 13 || buf[1] !== 10) return this.fail('a chunk is not followed by CRLF')
          this.mode = 'chunk-size'
          buf = buf.subarray(2)
          break
        }
        case 'trailers': {
          const nl = buf.indexOf(CRLF)
          if (nl === -1) return this.keepLine(buf)
          this.trailerBytes += nl + 2
          if (this.trailerBytes > MAX_TRAILERS) return this.fail('the response trailers are too large')
          buf = buf.subarray(nl + 2)
          if (nl === 0) {
            this.mode = 'done'
            return this.finish(buf.length > 0)
          }
          break
        }
        case 'done':
          this.extra = true
          return
        case 'failed':
          return
      }
    }
  }

  // The connection closed: the end of a `close`-framed body, or a cut anywhere else.
  closed(): void {
    if (this.mode === 'close') {
      this.mode = 'done'
      this.sink.end()
    }
  }

  private keepLine(buf: Buffer): void {
    if (buf.length > MAX_LINE) return this.fail('a chunk line is too long')
    this.pending = Buffer.from(buf)
  }

  private finish(extra: boolean): void {
    if (extra) this.extra = true
    this.sink.end()
  }

  private fail(reason: string): void {
    this.mode = 'failed'
    this.sink.failed(reason)
  }

  private readHead(text: string, rest: Buffer): boolean {
    // The status line: `HTTP/1.x NNN[ reason]`, read by character code.
    const n = text.length
    let eol = 0
    while (eol < n && text.charCodeAt(eol) !== 13) eol++
    if (!statusLine(text, eol)) return (void this.fail('the status line is malformed'), false)
    const minor = text.charCodeAt(7) === 49 ? 1 : 0
    const status = (text.charCodeAt(9) - 48) * 100 + (text.charCodeAt(10) - 48) * 10 + (text.charCodeAt(11) - 48)
    const reason = eol > 13 ? text.slice(13, eol) : ''
    const fields: [string, string][] = []
    let length: string | null = null
    let chunked = false
    let coded = false
    let connection = ''
    // Field lines: a token, `:`, optional whitespace, a value without CR, LF or NUL, optional
    // whitespace, CRLF (the head is Latin-1; it ends before the blank line).
    let pos = eol + 2
    if (eol < n && text.charCodeAt(eol + 1) !== 10) return (void this.fail('the status line is malformed'), false)
    while (pos < n) {
      let i = pos
      for (let c = text.charCodeAt(i); i < n && c < 128 && TCHAR[c] === 1; c = text.charCodeAt(++i));
      if (i === pos || i === n || text.charCodeAt(i) !== 58) return (void this.fail('a response header line is malformed'), false)
      const name = text.slice(pos, i)
      let end = i + 1
      for (; end < n; end++) {
        const c = text.charCodeAt(end)
        if (c === 13) break
        if (c === 10 || c === 0) return (void this.fail('a response header value is malformed'), false)
      }
      if (end < n && text.charCodeAt(end + 1) !== 10) return (void this.fail('a response header value is malformed'), false)
      let from = i + 1
      while (from < end && isOws(text.charCodeAt(from))) from++
      let to = end
      while (to > from && isOws(text.charCodeAt(to - 1))) to--
      const value = text.slice(from, to)
      pos = end + 2
      fields.push([name, value])
      // Only three names shape the framing; the rest are passed on as they are.
      const len = name.length
      if (len !== 14 && len !== 17 && len !== 10) continue
      const lower = name.toLowerCase()
      if (lower === 'content-length') {
        for (const v of value.includes(',') ? value.split(',') : [value]) {
          const t = v.trim()
          if (!decimal(t) || (length !== null && t !== length))
            return (void this.fail('the response has conflicting or malformed Content-Length'), false)
          length = t
        }
      } else if (lower === 'transfer-encoding') {
        coded = true
        chunked = value.toLowerCase().split(',').at(-1)!.trim() === 'chunked'
      } else if (lower === 'connection') connection += `,${value.toLowerCase()}`
    }
    if (status < 200 && status !== 101) {
      // 100 Continue, 103 Early Hints: interim answers; the final one follows.
      return true
    }
    const tokens = connection.split(',').map((t) => t.trim())
    let keepAlive = minor === 1 ? !tokens.includes('close') : tokens.includes('keep-alive')
    const upgrade = status === 101
    if (upgrade) {
      this.mode = 'done'
      this.sink.head({ status, reason, minor, fields, keepAlive: false, upgrade }, rest)
      return false
    }
    if (this.noBody || status === 204 || status === 304) this.mode = 'done'
    else if (coded) {
      // Transfer-Encoding wins over Content-Length; a sender of both is not trusted with a reuse.
      if (length !== null) keepAlive = false
      this.mode = chunked ? 'chunk-size' : 'close'
    } else if (length !== null) {
      this.remaining = Number(length)
      this.mode = this.remaining === 0 ? 'done' : 'length'
    } else this.mode = 'close'
    if (this.mode === 'close') keepAlive = false
    const go = this.sink.head({ status, reason, minor, fields, keepAlive, upgrade }, rest)
    if (this.mode === 'done') this.finish(rest.length > 0)
    return go
  }
}
