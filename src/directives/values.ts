// Argument shapes several directives share: header names and `= VALUE`.
import type { Arg } from '../policy/ast.ts'
import type { ArgCursor } from '../policy/cursor.ts'
import { parseTemplate, type Template } from '../policy/template.ts'

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

export function headerName(a: ArgCursor): string | undefined {
  const arg = a.expect(['word'], 'a header name')
  if (!arg) return undefined
  if (!TOKEN.test(arg.text)) return a.fail('bad-header', `'${arg.text}' is not a valid header name`, arg.span)
  return arg.text
}

// A header name a response directive may edit: not Gateway-Error, which only the gateway's
// own answers carry (and header steps also run on those).
export function responseHeaderName(a: ArgCursor): string | undefined {
  const arg = a.peek()
  const name = headerName(a)
  if (name !== undefined && name.toLowerCase() === 'gateway-error')
    return a.fail('reserved-header', 'Gateway-Error belongs to the gateway: response directives cannot set or remove it', arg!.span)
  return name
}

export function queryName(a: ArgCursor): string | undefined {
  const arg = a.expect(['word', 'string'], 'a query parameter name')
  if (!arg) return undefined
  return arg.kind === 'string' ? arg.text.slice(1, -1) : arg.text
}

// `= VALUE`: a "string" (a template), a bare reference like `request.ip`, or a number.
export function assignedValue(a: ArgCursor): Template | undefined {
  if (!a.expect(['equals'], "'=' and a value")) return undefined
  const arg = a.expect(
    ['string', 'word', 'number', 'duration', 'size', 'url', 'date', 'ip4', 'ip6', 'path'],
    'a value ("text", a reference like request.ip, or a number)',
  )
  if (!arg) return undefined
  return valueTemplate(a, arg)
}

// `NAME = VALUE` and nothing after it.
export function assignment(a: ArgCursor, name: (a: ArgCursor) => string | undefined): { name: string; value: Template } | undefined {
  const n = name(a)
  const value = n === undefined ? undefined : assignedValue(a)
  a.end()
  return n === undefined || value === undefined ? undefined : { name: n, value }
}

function valueTemplate(a: ArgCursor, arg: Arg): Template {
  if (arg.kind === 'string') return a.template(arg)
  if (arg.kind === 'word') return { parts: [{ ref: arg.text, rest: false, span: arg.span }], span: arg.span }
  return parseTemplate(arg.text, arg.span, (i) => arg.span.offset + i)
}
