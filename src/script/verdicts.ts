// What ctx.refuse(…) and ctx.respond(…) make, and how a script's answer becomes a Response.
import { GatewayError, type GatewayErrorCode } from '../runtime/gateway-error.ts'
import type { AnswerBody, RefusalCode } from './api.ts'

// The codes of runtime/gateway-error.ts (a test keeps the two lists in step).
export const REFUSAL_CODES: ReadonlySet<RefusalCode> = new Set<RefusalCode>([
  'bad_request',
  'unauthenticated',
  'forbidden',
  'no_route',
  'method_not_allowed',
  'payload_too_large',
  'rate_limited',
  'quota_exceeded',
  'retired',
  'blocked',
  'upstream_unavailable',
  'store_unavailable',
  'bad_gateway',
  'upstream_timeout',
  'internal_error',
])

// Headers only the gateway writes on an answer: the error marker, its request id and the framing.
const OWN_HEADERS = new Set(['gateway-error', 'x-request-id', 'content-length', 'transfer-encoding', 'connection'])

export class ScriptRefusal {
  constructor(readonly error: GatewayError) {}
}

export class ScriptAnswer {
  constructor(
    readonly status: number,
    readonly body: Uint8Array | null,
    readonly headers: Headers,
  ) {}

  toResponse(requestId: string, method: string): Response {
    const headers = new Headers(this.headers)
    headers.set('x-request-id', requestId)
    const noBody = this.status === 204 || this.status === 304
    const body = noBody ? null : (this.body ?? new Uint8Array(0))
    if (!noBody) headers.set('content-length', String(body!.byteLength))
    return new Response(method === 'HEAD' ? null : body, { status: this.status, headers })
  }
}

export type Verdict = ScriptRefusal | ScriptAnswer

// Extra headers a script gives an answer: valid names and values, none of the gateway's own.
function answerHeaders(given: unknown, what: string): Headers {
  if (given === undefined || given === null) return new Headers()
  if (typeof given !== 'object') throw new TypeError(`${what}: headers must be an object of name → value`)
  const out = new Headers()
  for (const [name, value] of Object.entries(given)) {
    if (OWN_HEADERS.has(name.toLowerCase())) throw new TypeError(`${what}: the gateway sets ${name} itself`)
    out.set(name, String(value)) // throws a TypeError for a bad name or value
  }
  return out
}

export function refusal(code: unknown, detail: unknown, headers: unknown): ScriptRefusal {
  if (typeof code !== 'string' || !REFUSAL_CODES.has(code as RefusalCode))
    throw new TypeError(`ctx.refuse: '${String(code)}' is not a gateway error code (${[...REFUSAL_CODES].join(', ')})`)
  const extra: Record<string, string> = {}
  for (const [name, value] of answerHeaders(headers, 'ctx.refuse')) {
    if (name === 'content-type') throw new TypeError('ctx.refuse: a gateway error is application/problem+json')
    extra[name] = value
  }
  const text = detail === undefined ? `refused by the route's script` : String(detail)
  return new ScriptRefusal(new GatewayError(code as GatewayErrorCode, text, extra))
}

const utf8 = new TextEncoder()

// A body as bytes and the Content-Type it implies (null: keep the answer's).
export function bodyBytes(body: AnswerBody | undefined, what: string): { bytes: Uint8Array | null; type: string | null } {
  if (body === undefined || body === null) return { bytes: null, type: null }
  if (typeof body === 'string') return { bytes: utf8.encode(body), type: 'text/plain; charset=utf-8' }
  if (body instanceof Uint8Array) return { bytes: body, type: 'application/octet-stream' }
  if (body instanceof ArrayBuffer) return { bytes: new Uint8Array(body), type: 'application/octet-stream' }
  const json = JSON.stringify(body)
  if (json === undefined) throw new TypeError(`${what}: a ${typeof body} is not a body`)
  return { bytes: utf8.encode(json), type: 'application/json' }
}

export function answer(status: unknown, body: AnswerBody | undefined, headers: unknown): ScriptAnswer {
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 200 || status > 599)
    throw new TypeError(`ctx.respond: the status must be an integer from 200 to 599, not ${String(status)}`)
  const { bytes, type } = bodyBytes(body, 'ctx.respond')
  if (bytes !== null && (status === 204 || status === 304)) throw new TypeError(`ctx.respond: a ${status} answer has no body`)
  const h = answerHeaders(headers, 'ctx.respond')
  if (type !== null && !h.has('content-type')) h.set('content-type', type)
  return new ScriptAnswer(status, bytes, h)
}
