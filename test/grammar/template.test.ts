// Templates in strings: `{ref}` placeholders, `{name*}` rest captures, and literal braces.
import { describe, expect, test } from 'bun:test'
import { unquote } from '../../src/policy/ast.ts'
import { SourceFile, type Span } from '../../src/policy/source.ts'
import { isPlain, parseTemplate, refsOf, stringOffsets, type Template } from '../../src/policy/template.ts'

// A template read from a quoted string token that starts at `column` (0-based) of one line.
function fromString(image: string, column = 0): { t: Template; file: SourceFile } {
  const file = new SourceFile('t.policy', '/tmp/t.policy', `${' '.repeat(column)}${image}`)
  const span: Span = { file, offset: column, length: image.length }
  return { t: parseTemplate(unquote(image), span, stringOffsets(image, column)), file }
}

// Plain text: offsets map one to one.
function fromText(text: string): Template {
  const file = new SourceFile('t.policy', '/tmp/t.policy', text)
  return parseTemplate(text, { file, offset: 0, length: text.length }, (i) => i)
}

// Parts as data: a literal stays a string, a placeholder shows as {ref} / {ref*} @ offset+length.
function parts(t: Template): string[] {
  return t.parts.map((p) => (typeof p === 'string' ? p : `{${p.ref}${p.rest ? '*' : ''}} @${p.span.offset}+${p.span.length}`))
}

describe('literal braces', () => {
  test('{{ is always a literal {', () => {
    expect(parts(fromText('a{{b}'))).toEqual(['a{b}'])
    expect(parts(fromText('{{param.id}'))).toEqual(['{param.id}'])
  })

  test('{{ before a placeholder keeps the placeholder', () => {
    expect(parts(fromText('{{{param.id}'))).toEqual(['{', '{param.id} @2+10'])
  })

  test('a JSON body is literal: { followed by a quote is no placeholder', () => {
    const { t } = fromString('"{\\"ok\\":true}"')
    expect(parts(t)).toEqual(['{"ok":true}'])
    expect(isPlain(t)).toBe(true)
  })

  test('braces that do not hold a reference are literal', () => {
    expect(parts(fromText('{ id} {1x} {} {a.b'))).toEqual(['{ id} {1x} {} {a.b'])
  })
})

describe('placeholders', () => {
  test('a reference with a root', () => {
    expect(parts(fromText('{param.id}'))).toEqual(['{param.id} @0+10'])
  })

  test('a bare capture name and a rest capture', () => {
    const t = fromText('/v2/{id}/{rest*}')
    expect(parts(t)).toEqual(['/v2/', '{id} @4+4', '/', '{rest*} @9+7'])
    expect(refsOf(t).map((r) => [r.ref, r.rest])).toEqual([
      ['id', false],
      ['rest', true],
    ])
  })

  test('references may hold dots and dashes', () => {
    expect(parts(fromText('{request.header.X-Partner-Code}|{app.meta.partner_code}'))).toEqual([
      '{request.header.X-Partner-Code} @0+31',
      '|',
      '{app.meta.partner_code} @32+23',
    ])
  })

  test('text around placeholders is kept in order', () => {
    const { t } = fromString('"{app.name}-{param.id}"')
    expect(parts(t)).toEqual(['{app.name} @1+10', '-', '{param.id} @12+10'])
    expect(isPlain(t)).toBe(false)
  })

  test('spans point into the source even after escapes', () => {
    // In the source: `  set header X = "\"q\" {param.id}"`; the string starts at column 17.
    const image = '"\\"q\\" {param.id}"'
    const { t, file } = fromString(image, 17)
    expect(parts(t)).toEqual(['"q" ', '{param.id} @24+10'])
    const ref = refsOf(t)[0]!
    expect(file.text.slice(ref.span.offset, ref.span.offset + ref.span.length)).toBe('{param.id}')
    expect(file.position(ref.span.offset)).toEqual({ line: 1, col: 25 })
  })

  test('a template without braces is one literal part', () => {
    expect(parts(fromText('portcullis'))).toEqual(['portcullis'])
    expect(parts(fromText(''))).toEqual([])
  })
})

describe('stringOffsets', () => {
  test('maps each unescaped character back to its source offset', () => {
    const map = stringOffsets('"a\\"b"', 10)
    // unescaped: a " b → source offsets 11, 12 (the backslash), 14; the end maps to the closing quote.
    expect([map(0), map(1), map(2), map(3)]).toEqual([11, 12, 14, 15])
  })
})
