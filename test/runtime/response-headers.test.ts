// The upstream's answer fields as the client gets them, and the gateway's own set over them.
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

test("the gateway's own fields replace the upstream's of the same name, in any case, the last of a name winning", () => {
  const own: [string, string][] = [
    ['x-request-id', 'gw-1'],
    ['RateLimit-Limit', '20'],
    ['ratelimit-remaining', '19'],
    ['RATELIMIT-LIMIT', '21'],
  ]
  expect(responseHeaders(upstream, true, own)).toEqual([
    ['Content-Type', 'application/json'],
    ['Set-Cookie', 'a=1'],
    ['Set-Cookie', 'b=2'],
    ['Content-Length', '2'],
    ['x-request-id', 'gw-1'],
    ['ratelimit-remaining', '19'],
    ['ratelimit-limit', '21'],
  ])
})

test('a long name (past the length table) is matched too', () => {
  const long = 'x-a-very-long-header-name-of-forty-characters'
  expect(responseHeaders([[long.toUpperCase(), 'up']], true, [[long, 'gw']])).toEqual([[long, 'gw']])
  expect(responseHeaders([[`${long}-other`, 'up']], true, [[long, 'gw']])).toEqual([
    [`${long}-other`, 'up'],
    [long, 'gw'],
  ])
})
