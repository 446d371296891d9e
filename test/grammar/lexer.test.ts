// The tokens of the policy language: each literal shape lexes as one token of the right kind.
import { describe, expect, test } from 'bun:test'
import { PolicyLexer } from '../../grammar/tokens.ts'

// `Kind:image` for every token, so a wrong split or a wrong kind shows in the diff.
function lex(text: string): string[] {
  const out = PolicyLexer.tokenize(text)
  expect(out.errors).toEqual([])
  return out.tokens.map((t) => `${t.tokenType.name}:${t.image}`)
}

function lexErrors(text: string): { offset: number; length: number; line: number | undefined; column: number | undefined }[] {
  return PolicyLexer.tokenize(text).errors.map((e) => ({ offset: e.offset, length: e.length, line: e.line, column: e.column }))
}

describe('durations, rates and sizes', () => {
  test('durations', () => {
    expect(lex('250ms 5s 2m 1h 1d')).toEqual(['Duration:250ms', 'Duration:5s', 'Duration:2m', 'Duration:1h', 'Duration:1d'])
  })

  test('rates with every unit spelling', () => {
    expect(lex('20/min 100/s 5000/hour 100000/day')).toEqual(['Rate:20/min', 'Rate:100/s', 'Rate:5000/hour', 'Rate:100000/day'])
    expect(lex('1/sec 2/second 3/minute 4/hr 5/d 6/h')).toEqual(['Rate:1/sec', 'Rate:2/second', 'Rate:3/minute', 'Rate:4/hr', 'Rate:5/d', 'Rate:6/h'])
  })

  test('a rate with an unknown unit is one malformed literal, for the checker to name', () => {
    expect(lex('20/fortnight')).toEqual(['Malformed:20/fortnight'])
  })

  test('sizes', () => {
    expect(lex('512b 64kb 1mb 10mb 2gb')).toEqual(['Size:512b', 'Size:64kb', 'Size:1mb', 'Size:10mb', 'Size:2gb'])
  })

  test('a bare number stays a number', () => {
    expect(lex('5 200 1000')).toEqual(['Number:5', 'Number:200', 'Number:1000'])
  })

  test('a number glued to an unknown unit is one malformed literal, not a lexing error', () => {
    expect(lex('10tb 1.5mb 5sec 127.0.0.1:9002')).toEqual(['Malformed:10tb', 'Malformed:1.5mb', 'Malformed:5sec', 'Malformed:127.0.0.1:9002'])
    expect(lexErrors('10tb')).toEqual([])
  })
})

describe('addresses and URLs', () => {
  test('IPv4 addresses and CIDRs', () => {
    expect(lex('10.0.0.0/8 203.0.113.7 192.168.1.0/24')).toEqual(['Ip4:10.0.0.0/8', 'Ip4:203.0.113.7', 'Ip4:192.168.1.0/24'])
  })

  test('IPv6 addresses and CIDRs', () => {
    expect(lex('::1 2001:db8::/32 fe80::1 ::ffff:192.0.2.1')).toEqual(['Ip6:::1', 'Ip6:2001:db8::/32', 'Ip6:fe80::1', 'Ip6:::ffff:192.0.2.1'])
  })

  test('a list of addresses keeps its commas', () => {
    expect(lex('10.0.0.0/8, 203.0.113.7,::1')).toEqual(['Ip4:10.0.0.0/8', 'Comma:,', 'Ip4:203.0.113.7', 'Comma:,', 'Ip6:::1'])
  })

  test('URLs are bare tokens, with port, path and query', () => {
    expect(lex('http://127.0.0.1:9001/base https://auth.example.com/.well-known/jwks.json')).toEqual([
      'Url:http://127.0.0.1:9001/base',
      'Url:https://auth.example.com/.well-known/jwks.json',
    ])
    expect(lex('http://h:1/x?a=1')).toEqual(['Url:http://h:1/x?a=1'])
  })

  test('a URL ends at a comma, a semicolon or a brace', () => {
    expect(lex('http://a:1,http://b:2;}')).toEqual(['Url:http://a:1', 'Comma:,', 'Url:http://b:2', 'Semicolon:;', 'RBrace:}'])
  })
})

describe('dates', () => {
  test('a calendar date', () => {
    expect(lex('2027-06-30')).toEqual(['Date:2027-06-30'])
  })

  test('RFC 3339 timestamps, UTC and with an offset or fraction', () => {
    expect(lex('2027-06-30T12:00:00Z 2027-06-30T12:00:00+02:00 2027-06-30T12:00:00.250-05:30')).toEqual([
      'Date:2027-06-30T12:00:00Z',
      'Date:2027-06-30T12:00:00+02:00',
      'Date:2027-06-30T12:00:00.250-05:30',
    ])
  })

  test('an impossible day still lexes as a date (the checker refuses it)', () => {
    expect(lex('2027-02-30')).toEqual(['Date:2027-02-30'])
  })
})

describe('strings', () => {
  test('a string keeps its quotes and escapes in the image', () => {
    expect(lex('"a \\"q\\" b\\\\ c\\n"')).toEqual(['String:"a \\"q\\" b\\\\ c\\n"'])
  })

  test('a JSON body with escaped quotes is one string', () => {
    expect(lex('respond 200 json "{\\"ok\\":true}"')).toEqual(['Word:respond', 'Number:200', 'Word:json', 'String:"{\\"ok\\":true}"'])
  })

  test('# inside a string is not a comment', () => {
    expect(lex('"a # b" # c')).toEqual(['String:"a # b"'])
  })

  test('an unterminated string is a lexing error at its quote', () => {
    expect(lexErrors('x "open\ny')).toEqual([{ offset: 2, length: 1, line: 1, column: 3 }])
  })
})

describe('paths', () => {
  test('literal and captured segments', () => {
    expect(lex('/api/v1/orders/{id} /static/{rest*} /u/{id:int}/{ref:uuid}')).toEqual([
      'Path:/api/v1/orders/{id}',
      'Path:/static/{rest*}',
      'Path:/u/{id:int}/{ref:uuid}',
    ])
  })

  test('a regex capture may hold one level of braces', () => {
    expect(lex('/codes/{id:/[A-Z]{3}/}')).toEqual(['Path:/codes/{id:/[A-Z]{3}/}'])
  })

  test('a path ends before a block', () => {
    expect(lex('/healthz {')).toEqual(['Path:/healthz', 'LBrace:{'])
    expect(lex('/healthz{')).toEqual(['Path:/healthz', 'LBrace:{'])
  })
})

describe('words', () => {
  test('names with colons, plus, dots and dashes', () => {
    expect(lex('orders:write app+route X-Partner-Code app.meta.partner_code jwt.sub round-robin')).toEqual([
      'Word:orders:write',
      'Word:app+route',
      'Word:X-Partner-Code',
      'Word:app.meta.partner_code',
      'Word:jwt.sub',
      'Word:round-robin',
    ])
  })

  test('a wildcard host is one word; a lone star is a star', () => {
    expect(lex('*.example.com * api.example.com')).toEqual(['Word:*.example.com', 'Star:*', 'Word:api.example.com'])
  })

  test('declaration keywords are their own tokens', () => {
    expect(lex('upstream app tier sink session defaults import match host')).toEqual([
      'Kw_upstream:upstream',
      'Kw_app:app',
      'Kw_tier:tier',
      'Kw_sink:sink',
      'Kw_session:session',
      'Kw_defaults:defaults',
      'Kw_import:import',
      'Kw_match:match',
      'Kw_host:host',
    ])
  })

  test('a keyword inside a longer name is a word', () => {
    expect(lex('upstreams apps matcher app.name app+route host-name')).toEqual([
      'Word:upstreams',
      'Word:apps',
      'Word:matcher',
      'Word:app.name',
      'Word:app+route',
      'Word:host-name',
    ])
  })

  test('keywords are case-sensitive', () => {
    expect(lex('Match UPSTREAM')).toEqual(['Word:Match', 'Word:UPSTREAM'])
  })
})

describe('punctuation, separators and comments', () => {
  test('punctuation', () => {
    expect(lex('* , = { } ;')).toEqual(['Star:*', 'Comma:,', 'Equals:=', 'LBrace:{', 'RBrace:}', 'Semicolon:;'])
  })

  test('; separates statements on one line', () => {
    expect(lex('limit body 64kb; proxy orders;')).toEqual([
      'Word:limit',
      'Word:body',
      'Size:64kb',
      'Semicolon:;',
      'Word:proxy',
      'Word:orders',
      'Semicolon:;',
    ])
  })

  test('comments run to the end of the line and are skipped', () => {
    expect(lex('# a whole line\nproxy orders # the rest\n#last')).toEqual(['Word:proxy', 'Word:orders'])
  })

  test('tokens keep 1-based line and column', () => {
    const t = PolicyLexer.tokenize('match GET /x {\n  proxy orders\n}').tokens
    expect(t.map((x) => [x.image, x.startLine, x.startColumn, x.startOffset])).toEqual([
      ['match', 1, 1, 0],
      ['GET', 1, 7, 6],
      ['/x', 1, 11, 10],
      ['{', 1, 14, 13],
      ['proxy', 2, 3, 17],
      ['orders', 2, 9, 23],
      ['}', 3, 1, 30],
    ])
  })

  test('an unknown character is an error and lexing goes on', () => {
    expect(lexErrors('a @ b')).toEqual([{ offset: 2, length: 1, line: 1, column: 3 }])
    expect(PolicyLexer.tokenize('a @ b').tokens.map((t) => t.image)).toEqual(['a', 'b'])
  })
})
