// The upstream's answer fields as the client gets them, and the gateway's X-Request-Id over them.
import { expect, test } from 'bun:test'
import { responseHeaders } from '../../src/runtime/client/response-headers.ts'

const upstream: [string, string][] = [
  ['Content-Type', 'application/json'],
  ['Connection', 'keep-alive, X-Private'],
  ['Keep-Alive', 'timeout=5'],
  ['X-Private', 'secret'],
  ['Gateway-Error', 'forged'],
  ['Set-Cookie', 'a=1'],
  ['Set-Cookie', 'b=2'],
  ['X-Request-Id', 'upstream-id'],
  ['RateLimit-Limit', '1000'],
  ['Content-Length', '2'],
]

test('hop-by-hop fields, those Connection names and Gateway-Error go; repeats stay; the length only for a whole body', () => {
  expect(responseHeaders(upstream, true)).toEqual([
    ['Content-Type', 'application/json'],
    ['Set-Cookie', 'a=1'],
    ['Set-Cookie', 'b=2'],
    ['X-Request-Id', 'upstream-id'],
    ['RateLimit-Limit', '1000'],
    ['Content-Length', '2'],
  ])
  expect(responseHeaders(upstream, false).map(([n]) => n)).not.toContain('Content-Length')
})

test("the gateway's X-Request-Id replaces an upstream's, in any case, and comes last", () => {
  expect(responseHeaders(upstream, true, 'gw-1')).toEqual([
    ['Content-Type', 'application/json'],
    ['Set-Cookie', 'a=1'],
    ['Set-Cookie', 'b=2'],
    ['RateLimit-Limit', '1000'],
    ['Content-Length', '2'],
    ['x-request-id', 'gw-1'],
  ])
  expect(
    responseHeaders(
      [
        ['X-REQUEST-ID', 'up'],
        ['X-Request-Ix', 'kept'],
      ],
      true,
      'gw-1',
    ),
  ).toEqual([
    ['X-Request-Ix', 'kept'],
    ['x-request-id', 'gw-1'],
  ])
})
