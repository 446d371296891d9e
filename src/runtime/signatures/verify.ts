// Verifying a request's RFC 9421 signature against the apps: choose the signature, check its
// parameters (created, expires, nonce, alg), what it covers, then the signature itself. The body
// (Content-Digest) and the nonce claim are the caller's: they need the request and the store.
//
// Several signatures: the first label of Signature-Input, in order, whose `keyid` names an app is
// verified; the others are ignored (a proxy on the way may have added its own). None naming an
// app is a 401 (a 503 when one could name a store app while the store is down).
import { isInnerList, parseDictionary, serializeInnerList, type Dictionary, type InnerList } from 'structured-headers'
import { storeDown, unauthenticated } from '../auth.ts'
import type { GatewayError } from '../gateway-error.ts'
import type { App, AppDirectory } from '../identity.ts'
import { ALGORITHMS, algorithmNamed, type SignatureAlgorithm } from './algorithms.ts'
import { componentOf, Underivable, type Component, type SignedRequest } from './components.ts'

// A `created` this far ahead of the gateway's clock is still taken (clocks drift a little).
export const FUTURE_SKEW_MS = 5_000
const MAX_NONCE = 256

export interface SignatureRules {
  readonly windowMs: number
  // Component identifiers the route's `covers` adds to the required ones.
  readonly covers: readonly string[]
}

export interface VerifiedSignature {
  app: App
  label: string
  value: string // the signature's bytes, base64
  keyid: string
  nonce: string
  coversDigest: boolean
}

// The signature base of §2.5: one line per covered component, then @signature-params.
export function signatureBase(components: readonly Component[], input: InnerList, r: SignedRequest): string | Underivable {
  let base = ''
  for (const c of components) {
    const v = c.derive(r)
    if (v instanceof Underivable) return v
    if (typeof v === 'string') base += `${c.id}: ${v}\n`
    else for (const x of v) base += `${c.id}: ${x}\n`
  }
  return `${base}"@signature-params": ${serializeInnerList(input)}`
}

// The covered components of a Signature-Input member, or why one cannot be verified.
export function componentsOf(input: InnerList): Component[] | string {
  const out: Component[] = []
  for (const item of input[0]) {
    const c = componentOf(item)
    if (typeof c === 'string') return c
    if (out.some((o) => o.id === c.id)) return `the signature covers ${c.id} twice`
    out.push(c)
  }
  return out
}

// The algorithms to try: the one `alg` names (it must fit the app's key), else every one the
// app holds a key for.
export function algorithmsFor(app: App, alg: unknown): SignatureAlgorithm[] | string {
  if (alg === undefined) {
    const usable = ALGORITHMS.filter((a) => a.usable(app))
    return usable.length ? usable : 'the app has no key to verify signatures with'
  }
  const a = typeof alg === 'string' ? algorithmNamed.get(alg) : undefined
  if (!a) return `the signature alg is not supported (supported: ${[...algorithmNamed.keys()].join(', ')})`
  return a.usable(app) ? [a] : `the signature alg ${alg} does not match the app's key`
}

function pickSignature(inputs: Dictionary, apps: AppDirectory): { label: string; input: InnerList; keyid: string; app: App } | GatewayError {
  let unavailable = false
  let keyids = 0
  for (const [label, member] of inputs) {
    if (!isInnerList(member)) continue
    const keyid = member[1].get('keyid')
    if (typeof keyid !== 'string') continue
    keyids++
    const app = apps.byKeyId(keyid)
    if (app === 'unavailable') unavailable = true
    else if (app !== null) return { label, input: member, keyid, app }
  }
  if (unavailable) return storeDown()
  return unauthenticated(keyids ? 'the signature keyid is not known' : 'the Signature-Input has no signature with a keyid')
}

export function verifySignature(
  inputHeader: string,
  signatureHeader: string,
  r: SignedRequest,
  hasBody: boolean,
  apps: AppDirectory,
  rules: SignatureRules,
  now: number,
): VerifiedSignature | GatewayError {
  let inputs: Dictionary, signatures: Dictionary
  try {
    inputs = parseDictionary(inputHeader)
    signatures = parseDictionary(signatureHeader)
  } catch {
    return unauthenticated('the Signature-Input or Signature header is not a valid structured field')
  }
  const picked = pickSignature(inputs, apps)
  if (!('app' in picked)) return picked
  const { label, input, keyid, app } = picked
  const sig = signatures.get(label)
  if (sig === undefined || isInnerList(sig) || !(sig[0] instanceof ArrayBuffer))
    return unauthenticated(`the Signature header has no byte sequence for '${label}'`)

  const params = input[1]
  const created = params.get('created')
  const expires = params.get('expires')
  const nonce = params.get('nonce')
  if (typeof created !== 'number' || !Number.isInteger(created)) return unauthenticated('the signature has no integer created time')
  if (expires !== undefined && (typeof expires !== 'number' || !Number.isInteger(expires)))
    return unauthenticated('the signature expires is not an integer')
  if (typeof nonce !== 'string' || nonce === '' || nonce.length > MAX_NONCE)
    return unauthenticated(`the signature has no nonce (a string of 1 to ${MAX_NONCE} characters)`)
  if (created * 1000 > now + FUTURE_SKEW_MS) return unauthenticated('the signature was created in the future')
  if (now - created * 1000 > rules.windowMs) return unauthenticated(`the signature is too old: created more than ${rules.windowMs / 1000}s ago`)
  if (expires !== undefined && expires * 1000 <= now) return unauthenticated('the signature has expired')

  const components = componentsOf(input)
  if (typeof components === 'string') return unauthenticated(components)
  const missing = uncovered(components, hasBody, rules.covers)
  if (missing) return unauthenticated(`the signature must cover ${missing}`)
  const algs = algorithmsFor(app, params.get('alg'))
  if (typeof algs === 'string') return unauthenticated(algs)

  const base = signatureBase(components, input, r)
  if (base instanceof Underivable) return unauthenticated(base.reason)
  if (!/^[\x20-\x7e\t\n]*$/.test(base)) return unauthenticated('a signed component holds characters outside ASCII')
  const bytes = Buffer.from(base, 'latin1')
  const value = new Uint8Array(sig[0])
  if (!algs.some((a) => a.verify(bytes, value, app, now))) return unauthenticated('the signature does not verify')
  return { app, label, value: Buffer.from(value).toString('base64'), keyid, nonce, coversDigest: components.some((c) => c.name === 'content-digest') }
}

// What the signature must cover and does not: the method, the target (whole, or path and query),
// Content-Digest when there is a body, and the route's `covers`.
function uncovered(components: readonly Component[], hasBody: boolean, covers: readonly string[]): string | null {
  const has = (name: string) => components.some((c) => c.name === name)
  if (!has('@method')) return '"@method"'
  if (!has('@target-uri') && !(has('@path') && has('@query'))) return '"@target-uri" (or "@path" and "@query")'
  if (hasBody && !has('content-digest')) return '"content-digest" (the request has a body)'
  for (const id of covers) if (!components.some((c) => c.id === id)) return id
  return null
}
