// The RFC 9421 signature of an answer (`sign response`): label sig1, hmac-sha256 with the
// app's response-signature key, covering the status, the answer's Content-Type and
// Content-Digest (sha-256 of the bytes delivered, RFC 9530), and the request's method and
// target URI (;req) and, when the request was signed, its signature (;req;key="<label>").
// The request components are derived by src/runtime/signatures/, the code `require hmac` checks
// requests with, from the request as the client sent it.
import { createHmac } from 'node:crypto'
import { serializeDictionary, serializeInnerList, serializeItem, type InnerList, type Item } from 'structured-headers'
import type { RequestContext } from '../context.ts'
import { componentOf, signedRequestOf, Underivable, type Component } from '../signatures/components.ts'
import { contentDigestOf } from '../signatures/content-digest.ts'
import { signatureBase } from '../signatures/verify.ts'

export const RESPONSE_LABEL = 'sig1'
export const RESPONSE_ALG = 'hmac-sha256'

const noParams = () => new Map<string, string | boolean | number>()

// A response component: its value is given, not derived from the request.
function given(name: string, value: string): { item: Item; component: Component } {
  const item: Item = [name, noParams()]
  return { item, component: { name, id: serializeItem(item), derive: () => value } }
}

// A request component (`;req`): derived as `require hmac` derives it, from the request as sent.
function ofRequest(name: string, params: [string, string][] = []): { item: Item; component: Component } {
  const c = componentOf([name, new Map(params)])
  if (typeof c === 'string') throw new Error(c)
  const item: Item = [name, new Map<string, string | boolean>([['req', true], ...params])]
  return { item, component: { name, id: serializeItem(item), derive: c.derive } }
}

export type SignedHeaders = Record<'content-digest' | 'signature-input' | 'signature', string>

// The headers that sign an answer with `status`, Content-Type `contentType` (null: none, then
// it is not covered) and the delivered `body`, for the request `ctx`.
export function signResponse(
  ctx: RequestContext,
  status: number,
  contentType: string | null,
  body: Uint8Array,
  key: Uint8Array,
  keyid: string,
  nowMs: number,
): SignedHeaders {
  const digest = contentDigestOf(body)
  const parts = [given('@status', String(status))]
  if (contentType !== null) parts.push(given('content-type', contentType))
  parts.push(given('content-digest', digest), ofRequest('@method'), ofRequest('@target-uri'))
  const signed = ctx.identity?.signature
  if (signed) parts.push(ofRequest('signature', [['key', signed.label]]))

  const input: InnerList = [
    parts.map((p) => p.item),
    new Map<string, string | number>([
      ['created', Math.floor(nowMs / 1000)],
      ['keyid', keyid],
      ['alg', RESPONSE_ALG],
    ]),
  ]
  const base = signatureBase(
    parts.map((p) => p.component),
    input,
    signedRequestOf(ctx),
  )
  // The request was verified with these components, so they derive; a miss is a bug.
  if (base instanceof Underivable) throw new Error(`cannot sign the response: ${base.reason}`)
  const mac = createHmac('sha256', key).update(Buffer.from(base, 'latin1')).digest()
  const value = mac.buffer.slice(mac.byteOffset, mac.byteOffset + mac.byteLength) as ArrayBuffer
  return {
    'content-digest': digest,
    'signature-input': `${RESPONSE_LABEL}=${serializeInnerList(input)}`,
    signature: serializeDictionary(new Map([[RESPONSE_LABEL, [value, noParams()]]])),
  }
}
