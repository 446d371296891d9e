// The response side of bench/bare-socket-proxy.ts and bench/bare-raw-pool.ts: just enough
// HTTP/1.1 parsing for the bench's answers. Lenient and unhardened: a yardstick, not a product.

export const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'content-length',
  'host',
  'te',
  'trailer',
  'upgrade',
  'proxy-connection',
])
export const CRLF2 = Buffer.from('\r\n\r\n')

export interface Head {
  status: number
  headers: [string, string][]
  length: number | 'chunked' | 'close'
  keepAlive: boolean
}

/** The status line and header block (without the blank line); hop-by-hop headers dropped. */
export function parseHead(text: string): Head {
  const lines = text.split('\r\n')
  const [version = '', code = ''] = (lines[0] ?? '').split(' ')
  const head: Head = { status: Number(code), headers: [], length: 'close', keepAlive: version === 'HTTP/1.1' }
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':')
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    if (name === 'content-length') head.length = Number(value)
    else if (name === 'transfer-encoding' && value.toLowerCase().includes('chunked')) head.length = 'chunked'
    else if (name === 'connection') head.keepAlive = value.toLowerCase() !== 'close'
    if (!HOP_BY_HOP.has(name)) head.headers.push([name, value])
  }
  if (head.length === 'close') head.keepAlive = false
  return head
}

/** The decoded body and the bytes after it, or null when more bytes are needed. */
export function dechunk(buf: Buffer): [Buffer, Buffer] | null {
  const parts: Buffer[] = []
  for (let pos = 0; ;) {
    const eol = buf.indexOf('\r\n', pos)
    if (eol < 0) return null
    const size = Number.parseInt(buf.toString('latin1', pos, eol).split(';')[0] ?? '', 16)
    if (Number.isNaN(size)) throw new Error('bad chunk size from the upstream')
    if (size === 0) {
      const end = buf.indexOf(CRLF2, eol) // after the trailers, if any
      return end < 0 ? null : [Buffer.concat(parts), buf.subarray(end + 4)]
    }
    if (buf.length < eol + 2 + size + 2) return null
    parts.push(buf.subarray(eol + 2, eol + 2 + size))
    pos = eol + 2 + size + 2
  }
}

// The body of an answer once all of it is in `buf` (Content-Length or chunked), with the
// bytes after it; null while more must arrive (a `close`-framed body ends with the socket).
export function wholeBody(head: Head, buf: Buffer): [Buffer, Buffer] | null {
  if (typeof head.length === 'number') return buf.length >= head.length ? [buf.subarray(0, head.length), buf.subarray(head.length)] : null
  return head.length === 'chunked' ? dechunk(buf) : null
}
