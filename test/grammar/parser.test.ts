// The parser: every top-level declaration, generic statements, `;`, and recovery.
import { describe, expect, test } from 'bun:test'
import { parsePolicy } from '../../grammar/parser.ts'
import { parseFile, type Arg, type Declaration, type Statement } from '../../src/policy/ast.ts'
import { DiagnosticBag, renderDiagnostic } from '../../src/policy/diagnostics.ts'
import { SourceFile, type Span } from '../../src/policy/source.ts'

function parse(text: string): { decls: Declaration[]; errors: string[] } {
  const bag = new DiagnosticBag()
  const file = parseFile(new SourceFile('t.policy', '/tmp/t.policy', text), bag)
  return { decls: file.declarations, errors: bag.items.map(renderDiagnostic) }
}

function ok(text: string): Declaration[] {
  const { decls, errors } = parse(text)
  expect(errors).toEqual([])
  return decls
}

// `LINE:COL+LENGTH`: where a span starts and how long it is.
function at(span: Span): string {
  const { line, col } = span.file.position(span.offset)
  return `${line}:${col}+${span.length}`
}
const words = (args: Arg[]) => args.map((a) => `${a.kind}:${a.text}`)
const statements = (body: Statement[]) => body.map((s) => words(s.words).join(' '))
const only = <T>(xs: T[]): T => {
  expect(xs.length).toBe(1)
  return xs[0]!
}

describe('top-level declarations', () => {
  test('import', () => {
    const d = only(ok('import "common/apps.policy"'))
    if (d.kind !== 'import') throw new Error(d.kind)
    expect([d.path, at(d.pathSpan), at(d.span)]).toEqual(['common/apps.policy', '1:8+20', '1:1+27'])
  })

  test('upstream with its fields as statements', () => {
    const d = only(ok('upstream orders {\n  target http://127.0.0.1:9001 weight 3\n  timeout 5s\n}'))
    if (d.kind !== 'upstream') throw new Error(d.kind)
    expect([d.name, at(d.nameSpan)]).toEqual(['orders', '1:10+6'])
    expect(statements(d.body)).toEqual(['word:target url:http://127.0.0.1:9001 word:weight number:3', 'word:timeout duration:5s'])
  })

  test('app', () => {
    const d = only(ok('app partner_a {\n  key "ak_a"\n  meta partner_code "PA-001"\n  allow ip 10.0.0.0/8, ::1\n}'))
    if (d.kind !== 'app') throw new Error(d.kind)
    expect(d.name).toBe('partner_a')
    expect(statements(d.body)).toEqual([
      'word:key string:"ak_a"',
      'word:meta word:partner_code string:"PA-001"',
      'word:allow word:ip ip4:10.0.0.0/8 comma:, ip6:::1',
    ])
  })

  test('tier lines, with and without burst', () => {
    const ds = ok('tier gold 20/min burst 5\ntier free unlimited')
    expect(ds.map((d) => (d.kind === 'tier' ? [d.name, words(d.args).join(' ')] : d.kind))).toEqual([
      ['gold', 'rate:20/min word:burst number:5'],
      ['free', 'word:unlimited'],
    ])
  })

  test('sink', () => {
    const d = only(ok('sink audit { redis stream "gateway:access" maxlen 1000000 }'))
    if (d.kind !== 'sink') throw new Error(d.kind)
    expect([d.name, ...statements(d.body)]).toEqual(['audit', 'word:redis word:stream string:"gateway:access" word:maxlen number:1000000'])
  })

  test('session', () => {
    const d = only(ok('session {\n  verify via users /internal/verify-login\n  ttl 2h\n  single-sign-on\n}'))
    if (d.kind !== 'session') throw new Error(d.kind)
    expect(statements(d.body)).toEqual(['word:verify word:via word:users path:/internal/verify-login', 'word:ttl duration:2h', 'word:single-sign-on'])
  })

  test('defaults', () => {
    const d = only(ok('defaults {\n  limit body 1mb\n  set header X-Gateway = "portcullis"\n}'))
    if (d.kind !== 'defaults') throw new Error(d.kind)
    expect(statements(d.body)).toEqual(['word:limit word:body size:1mb', 'word:set word:header word:X-Gateway equals:= string:"portcullis"'])
    expect(at(d.span)).toBe('1:1+67')
  })

  test('match with methods, pattern and host', () => {
    const d = only(ok('match GET,HEAD /api/v1/orders/{id:int} host api.example.com {\n  proxy orders\n}'))
    if (d.kind !== 'match') throw new Error(d.kind)
    expect(words(d.methods)).toEqual(['word:GET', 'word:HEAD'])
    expect([d.pattern.kind, d.pattern.text, at(d.pattern.span)]).toEqual(['path', '/api/v1/orders/{id:int}', '1:16+23'])
    expect([d.host?.text, at(d.host!.span)]).toEqual(['api.example.com', '1:45+15'])
    expect(statements(d.body)).toEqual(['word:proxy word:orders'])
  })

  test('match on every method, with a wildcard host', () => {
    const d = only(ok('match * /legacy/{rest*} host *.example.com { respond 410 }'))
    if (d.kind !== 'match') throw new Error(d.kind)
    expect([words(d.methods), d.pattern.text, d.host?.text]).toEqual([['star:*'], '/legacy/{rest*}', '*.example.com'])
  })

  test('a whole program keeps the declarations in source order', () => {
    const ds = ok(
      'import "a.policy"\nupstream u { target http://h:1 }\ntier t 1/s\napp a { tier t }\nsink s { file "x" }\nsession { ttl 1h }\ndefaults { limit body 1kb }\nmatch GET /x { proxy u }\n',
    )
    expect(ds.map((d) => d.kind)).toEqual(['import', 'upstream', 'tier', 'app', 'sink', 'session', 'defaults', 'match'])
  })

  test('an unknown word at the top level is kept as a statement for the checker', () => {
    const d = only(ok('upstrem orders { target http://h:1 }'))
    if (d.kind !== 'unknown') throw new Error(d.kind)
    expect([words(d.statement.words), statements(d.statement.block!)]).toEqual([['word:upstrem', 'word:orders'], ['word:target url:http://h:1']])
  })
})

describe('statements', () => {
  test('; separates statements on one line', () => {
    const d = only(ok('match POST /o { limit body 64kb; set query a = "1" ; proxy orders timeout 10s }'))
    if (d.kind !== 'match') throw new Error(d.kind)
    expect(statements(d.body)).toEqual([
      'word:limit word:body size:64kb',
      'word:set word:query word:a equals:= string:"1"',
      'word:proxy word:orders word:timeout duration:10s',
    ])
  })

  test('a new line ends a statement', () => {
    const d = only(ok('defaults {\n  remove header X-A\n  remove header X-B\n}'))
    if (d.kind !== 'defaults') throw new Error(d.kind)
    expect(statements(d.body)).toEqual(['word:remove word:header word:X-A', 'word:remove word:header word:X-B'])
  })

  test('a statement span runs from its head to its last argument', () => {
    const d = only(ok('defaults {\n  set header X-A = "v" # note\n}'))
    if (d.kind !== 'defaults') throw new Error(d.kind)
    expect(d.body.map((s) => at(s.span))).toEqual(['2:3+20'])
  })

  test('comments are skipped everywhere', () => {
    const d = only(ok('# top\nmatch GET /x { # after the brace\n  # a line\n  respond 200 # trailing\n}\n# end'))
    if (d.kind !== 'match') throw new Error(d.kind)
    expect(statements(d.body)).toEqual(['word:respond number:200'])
  })

  test('the reference examples parse without a syntax error', () => {
    const ds = ok(`match GET /static/{rest*} { proxy http://127.0.0.1:9300 }
match GET /healthz { respond 200 json "{\\"ok\\":true}" }
match * /legacy/user/{uid}/info {
  rewrite path /user/users/{uid}/user-info
  status deprecated sunset 2027-06-30
  proxy users
}`)
    expect(ds.map((d) => (d.kind === 'match' ? statements(d.body).length : -1))).toEqual([1, 1, 3])
  })
})

describe('syntax errors', () => {
  test('a missing } names the end of the file and the open brace', () => {
    expect(parse('match GET /x {\n  proxy orders\n').errors).toEqual([
      `t.policy:2:15: error: expected "}", found the end of the file
2 |   proxy orders
  |               ^
t.policy:1:14: note: this '{' is never closed`,
    ])
  })

  test('a stray token is reported and the next line still parses', () => {
    const { decls, errors } = parse('"oops"\nmatch GET /x { respond 200 }')
    expect(errors).toEqual([
      `t.policy:1:1: error: unexpected '"oops"': a line starts with a name (a declaration or directive)
1 | "oops"
  | ^^^^^^`,
    ])
    expect(decls.map((d) => d.kind)).toEqual(['match'])
  })

  test('several bad lines are each reported', () => {
    const { decls, errors } = parse('match GET /a {\n  42\n  respond 200\n  "x"\n}\n= 1\nmatch GET /b { respond 200 }')
    expect(errors.map((e) => e.split('\n')[0])).toEqual([
      "t.policy:2:3: error: unexpected '42': a line starts with a name (a declaration or directive)",
      't.policy:4:3: error: unexpected \'"x"\': a line starts with a name (a declaration or directive)',
      "t.policy:6:1: error: unexpected '=': a line starts with a name (a declaration or directive)",
      "t.policy:6:3: error: unexpected '1': a line starts with a name (a declaration or directive)",
    ])
    expect(decls.map((d) => (d.kind === 'match' ? d.pattern.text : d.kind))).toEqual(['/a', '/b'])
  })

  test('a match without a path says what was expected', () => {
    expect(parse('match GET { respond 200 }').errors.map((e) => e.split('\n')[0])).toEqual(["t.policy:1:11: error: expected a path, found '{'"])
  })

  test('an unknown character is reported with its position', () => {
    expect(parse('match GET /x { respond 200 }\n@').errors.map((e) => e.split('\n')[0])).toEqual(['t.policy:2:1: error: unexpected character "@"'])
  })

  test('parsePolicy reports lexing and parsing errors separately', () => {
    const out = parsePolicy('match GET /x {\n  respond 200 @\n')
    expect([out.lexErrors.length, out.parseErrors.length]).toEqual([1, 1])
    expect(out.parseErrors[0]!.name).toBe('MismatchedTokenException')
    expect(out.tokens.map((t) => t.image)).toEqual(['match', 'GET', '/x', '{', 'respond', '200'])
  })
})
