// The upstream answer reader: every framing, fed whole and one byte at a time, and the
// answers it must refuse because they could smuggle a second answer.
import { describe, expect, test } from 'bun:test'
import { ResponseReader, type ResponseHead } from '../../src/runtime/client/http1.ts'

interface Read {
  head: ResponseHead | null
  body: string
  ended: boolean
  failed: string | null
  extra: boolean
}

function read(text: string, opts: { split?: 'whole' | 'bytes'; noBody?: boolean; close?: boolean } = {}): Read {
  const out: Read = { head: null, body: '', ended: false, failed: null, extra: false }
  const reader = new ResponseReader({
    head: (h) => ((out.head = h), true),
    body: (c) => void (out.body += c.toString('latin1')),
    end: () => void (out.ended = true),
    failed: (r) => void (out.failed = r),
  })
  reader.noBody = opts.noBody ?? false
  const bytes = Buffer.from(text, 'latin1')
  if (opts.split === 'bytes') for (let i = 0; i < bytes.length; i++) reader.feed(bytes.subarray(i, i + 1))
  else reader.feed(bytes)
  if (opts.close) reader.closed()
  out.extra = reader.extra
  return out
}

const both = (name: string, fn: (split: 'whole' | 'bytes') => void) => {
  test(`${name} (whole)`, () => fn('whole'))
  test(`${name} (byte by byte)`, () => fn('bytes'))
}

describe('framing', () => {
  both('Content-Length', (split) => {
    const r = read('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello', { split })
    expect(r.head!.status).toBe(200)
    expect(r.head!.fields).toEqual([
      ['Content-Length', '5'],
      ['X-A', '1'],
    ])
    expect(r.body).toBe('hello')
    expect(r.ended).toBe(true)
    expect(r.head!.keepAlive).toBe(true)
  })

  both('chunked with extensions and trailers', (split) => {
    const r = read('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n', { split })
    expect(r.body).toBe('hello world')
    expect(r.ended).toBe(true)
    expect(r.failed).toBeNull()
  })

  both('read until close', (split) => {
    const r = read('HTTP/1.1 200 OK\r\n\r\nall of it', { split, close: true })
    expect(r.body).toBe('all of it')
    expect(r.ended).toBe(true)
    expect(r.head!.keepAlive).toBe(false)
  })

  test('a close-framed body cut short is not ended without the close', () => {
    const r = read('HTTP/1.1 200 OK\r\n\r\npart')
    expect(r.ended).toBe(false)
  })

  test('HEAD, 204 and 304 answers have no body whatever their length says', () => {
    expect(read('HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n', { noBody: true }).ended).toBe(true)
    expect(read('HTTP/1.1 204 No Content\r\n\r\n').ended).toBe(true)
    expect(read('HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n').ended).toBe(true)
  })

  test('1xx interim answers are skipped', () => {
    const r = read('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok')
    expect(r.head!.status).toBe(201)
    expect(r.body).toBe('ok')
  })

  test('HTTP/1.0 is closed unless it asks for keep-alive; Connection: close is honoured', () => {
    expect(read('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n').head!.keepAlive).toBe(false)
    expect(read('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n').head!.keepAlive).toBe(true)
    expect(read('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n').head!.keepAlive).toBe(false)
  })
})

describe('answers that could smuggle', () => {
  test('bytes after the body mark the connection as not reusable', () => {
    const r = read('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil')
    expect(r.body).toBe('ok')
    expect(r.extra).toBe(true)
  })

  test('Transfer-Encoding wins over Content-Length, and the connection is not reused', () => {
    const r = read('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n')
    expect(r.body).toBe('hello')
    expect(r.head!.keepAlive).toBe(false)
  })

  test('conflicting Content-Length values are refused; equal repeats are accepted', () => {
    expect(read('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd').failed).toContain('Content-Length')
    expect(read('HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nabc').failed).toContain('Content-Length')
    expect(read('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab').body).toBe('ab')
    expect(read('HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n').failed).not.toBeNull()
  })

  test('obs-fold, a bad field name and a bad status line are refused', () => {
    expect(read('HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n').failed).not.toBeNull()
    expect(read('HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n').failed).not.toBeNull()
    expect(read('HTTP/1.1 20 OK\r\n\r\n').failed).not.toBeNull()
    expect(read('HTTP/2 200 OK\r\n\r\n').failed).not.toBeNull()
    expect(read('garbage\r\n\r\n').failed).not.toBeNull()
  })

  test('a bare CR or LF, a NUL or a control character in the status line or a field is refused', () => {
    for (const head of [
      'HTTP/1.1 200 O\rK\r\nContent-Length: 0',
      'HTTP/1.1 200 O\x01K\r\nContent-Length: 0',
      'HTTP/1.1 200\x00\r\nContent-Length: 0',
      'HTTP/1.1 2000 OK\r\nContent-Length: 0',
      'HTTP/1.1 099 OK\r\nContent-Length: 0',
      'HTTP/1.2 200 OK\r\nContent-Length: 0',
      'HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0',
      'HTTP/1.1 200 OK\r\nX-A: a\nb\r\nContent-Length: 0',
      'HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0',
      'HTTP/1.1 200 OK\r\nX-\u00e9: 1\r\nContent-Length: 0',
      'HTTP/1.1 200 OK\r\n: no name\r\nContent-Length: 0',
      'HTTP/1.1 200 OK\r\nContent-Length: 1e3',
    ])
      expect({ head, failed: read(`${head}\r\n\r\n`).failed !== null }).toEqual({ head, failed: true })
  })

  test('a reason may be empty or missing, and carries tabs and Latin-1; field values are trimmed of spaces and tabs only', () => {
    expect(read('HTTP/1.1 204\r\n\r\n').head).toMatchObject({ status: 204, reason: '' })
    expect(read('HTTP/1.1 204 \r\n\r\n').head).toMatchObject({ status: 204, reason: '' })
    expect(read('HTTP/1.0 404 Not\tFound \u00e9\r\nContent-Length: 0\r\n\r\n').head).toMatchObject({
      status: 404,
      minor: 0,
      reason: 'Not\tFound \u00e9',
    })
    const r = read('HTTP/1.1 200 OK\r\nX-A: \t a b \t\r\nX-B:\r\nX-C:\u00a0c\u00a0\r\nContent-Length: 0\r\n\r\n')
    expect(r.head!.fields).toEqual([
      ['X-A', 'a b'],
      ['X-B', ''],
      ['X-C', '\u00a0c\u00a0'],
      ['Content-Length', '0'],
    ])
  })

  test('a bare LF does not end the head', () => {
    const r = read('HTTP/1.1 200 OK\nContent-Length: 2\n\nok')
    expect(r.head).toBeNull()
  })

  test('malformed chunk sizes and missing CRLF after a chunk are refused', () => {
    expect(read('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n').failed).not.toBeNull()
    expect(read('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n').failed).not.toBeNull()
    expect(read('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n').failed).not.toBeNull()
    expect(read('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000\r\n').failed).not.toBeNull()
  })

  test('a head over 64 KiB is refused', () => {
    expect(read(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`).failed).toContain('64 KiB')
  })

  test('a Transfer-Encoding that does not end in chunked is read until close', () => {
    const r = read('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nbytes', { close: true })
    expect(r.body).toBe('bytes')
    expect(r.head!.keepAlive).toBe(false)
  })
})
