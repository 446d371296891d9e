import { describe, expect, test } from 'bun:test'
import { normalizePath, normalizedPath, splitTarget } from '../../src/runtime/normalize.ts'

describe('normalizePath', () => {
  test.each([
    ['/', '/', []],
    ['/api/v1/orders', '/api/v1/orders', ['api', 'v1', 'orders']],
    ['/api/v1/orders/', '/api/v1/orders/', ['api', 'v1', 'orders']],
    ['/a/./b/../c', '/a/c', ['a', 'c']],
    ['/a//b///c', '/a/b/c', ['a', 'b', 'c']],
    ['/../../etc/passwd', '/etc/passwd', ['etc', 'passwd']],
    ['/a/%2e%2e/b', '/b', ['b']],
    ['/%61pi/x', '/api/x', ['api', 'x']],
    ['/a%2Fb/c', '/a%2Fb/c', ['a%2Fb', 'c']],
    ['/a%2fb', '/a%2Fb', ['a%2Fb']],
    ['/sp ace', '/sp%20ace', ['sp%20ace']],
    ['/back\\slash', '/back%5Cslash', ['back%5Cslash']],
    ['/caf\u00e9', '/caf%C3%A9', ['caf%C3%A9']],
    ['/a/b/..', '/a/', ['a']],
    ['/.well-known/x', '/.well-known/x', ['.well-known', 'x']],
  ] as const)('%s → %s', (raw, path, segments) => {
    expect(normalizePath(raw)).toEqual({ path, segments: [...segments] })
  })

  test.each(['/%zz', '/a%2', '/a%00b', '/a\0b'])('%s is malformed', (raw) => {
    expect(normalizePath(raw)).toBeNull()
  })
})

describe('splitTarget', () => {
  test.each([
    ['http://h:1/a/b?x=1&y=2', '/a/b', 'x=1&y=2'],
    ['http://h:1/a#frag', '/a', ''],
    ['http://h:1', '/', ''],
    ['http://h:1//evil/x?q', '//evil/x', 'q'],
    ['/relative?z', '/relative', 'z'],
  ] as const)('%s', (url, path, query) => {
    expect(splitTarget(url)).toEqual([path, query])
  })
})

import { safeHeaderValue } from '../../src/runtime/headers.ts'

describe('safeHeaderValue', () => {
  test.each([
    ['plain value', 'plain value'],
    ['caf\u00e9', 'caf\u00e9'],
    ['\u20acuro', '%E2%82%ACuro'],
    ['a\r\nX-Evil: 1', 'a X-Evil: 1'],
    ['nul\0byte', 'nul byte'],
    ['emoji \u{1F600}', 'emoji %F0%9F%98%80'],
  ])('%j → %j', (input, output) => {
    const v = safeHeaderValue(input)
    expect(v).toBe(output)
    expect(() => new Headers({ x: v })).not.toThrow()
  })
})

test('normalizedPath (a rewritten path) is normalizePath().path, also where the fast path does not apply', () => {
  for (const raw of ['/a/b', '/a//b', '/a/./b/../c', '/a/%7Eb', '/a/b/', '/', '/a b', '/%00', '/a/%zz', 'a/b', '/a/..', '/é']) {
    expect({ raw, path: normalizedPath(raw) }).toEqual({ raw, path: normalizePath(raw)?.path ?? null })
  }
})
