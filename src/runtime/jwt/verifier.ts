// A token → its verified claims, or the gateway error that refuses it. jose does the work
// (jwtVerify with an algorithm allow-list, the issuer, the audience and the time claims); the
// verified tokens are cached. Verifiers with the same settings are shared by every route and
// program that uses them, so a token is checked once however many routes accept it.
import { createLocalJWKSet, errors, importSPKI, jwtVerify, type JWTVerifyGetKey } from 'jose'
import { createHash } from 'node:crypto'
import { GatewayError } from '../gateway-error.ts'
import { acquireKeySet, KeySetUnavailable } from './key-set.ts'
import type { KeyMaterial } from './keys.ts'
import { TokenCache } from './token-cache.ts'

export interface VerifierSpec {
  issuer: string | null
  audience: readonly string[] | null
  algorithms: readonly string[]
  leewaySeconds: number
  keys: { jwks: URL; cooldownMs: number } | { material: KeyMaterial; text: string }
}

export type Verdict = Readonly<Record<string, unknown>> | GatewayError

export interface Verifier {
  // A cached token is answered without a Promise.
  verify(token: string, nowMs: number): Verdict | Promise<Verdict>
}

export const CHALLENGE_INVALID = 'Bearer error="invalid_token"'
const invalid = (detail: string) => new GatewayError('unauthenticated', detail, { 'www-authenticate': CHALLENGE_INVALID })

// Three base64url parts; anything else is refused before jose sees it.
const COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/
const MAX_TOKEN_CHARS = 16 * 1024

// jose's error → a short reason for the caller. Never the token, never a claim's value.
function refusal(err: unknown): GatewayError {
  if (err instanceof KeySetUnavailable)
    return new GatewayError('upstream_unavailable', 'the gateway cannot check tokens now: the key set of the token issuer cannot be fetched', {
      'retry-after': '1',
    })
  if (err instanceof errors.JWTExpired) return invalid('the token has expired')
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return invalid('the token is not valid yet')
    if (err.claim === 'iss') return invalid("the token's issuer is not accepted")
    if (err.claim === 'aud') return invalid("the token's audience is not accepted")
    return invalid(`the token's "${err.claim}" claim is not valid`)
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return invalid("the token's signing algorithm is not accepted")
  if (err instanceof errors.JWKSNoMatchingKey) return invalid('no known key matches the token')
  if (err instanceof errors.JWSSignatureVerificationFailed) return invalid("the token's signature is not valid")
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return invalid('the token is malformed')
  return invalid('the token is not valid')
}

// One imported key per algorithm (importSPKI binds a CryptoKey to its algorithm).
function staticKey(material: KeyMaterial): JWTVerifyGetKey | Uint8Array {
  if (material.kind === 'secret') return material.bytes
  if (material.kind === 'jwks') return createLocalJWKSet(material.jwks)
  const spki = material.key.export({ type: 'spki', format: 'pem' }) as string
  const imported = new Map<string, ReturnType<typeof importSPKI>>()
  return function publicKey(header) {
    const alg = header.alg!
    let k = imported.get(alg)
    if (!k) imported.set(alg, (k = importSPKI(spki, alg)))
    return k
  }
}

interface Made {
  verifier: Verifier
  prefetch: () => void
  release: () => void
}

function createVerifier(spec: VerifierSpec): Made {
  let key: JWTVerifyGetKey | Uint8Array
  let prefetch = () => {}
  let release = () => {}
  if ('jwks' in spec.keys) {
    const shared = acquireKeySet(spec.keys.jwks, spec.keys.cooldownMs)
    key = shared.set.getKey
    prefetch = shared.set.prefetch
    release = shared.release
  } else key = staticKey(spec.keys.material)
  const options = {
    algorithms: [...spec.algorithms],
    clockTolerance: spec.leewaySeconds,
    ...(spec.issuer === null ? {} : { issuer: spec.issuer }),
    ...(spec.audience === null ? {} : { audience: [...spec.audience] }),
  }
  const leeway = spec.leewaySeconds
  const cache = new TokenCache()

  async function verifySignature(token: string, nowMs: number): Promise<Verdict> {
    if (token.length > MAX_TOKEN_CHARS || !COMPACT.test(token)) return invalid('the token is malformed')
    try {
      // Both overloads of jwtVerify take the key; TypeScript cannot pick one for the union.
      const { payload } = await jwtVerify(token, key as Uint8Array, { ...options, currentDate: new Date(nowMs) })
      return cache.put(token, Object.freeze(payload), nowMs, leeway * 1000).claims
    } catch (err) {
      return refusal(err)
    }
  }

  return {
    prefetch,
    release,
    verifier: {
      verify(token, nowMs) {
        // An expired token is no longer in the cache; one whose nbf is ahead of this clock is.
        const hit = cache.get(token, nowMs)
        if (hit === undefined) return verifySignature(token, nowMs)
        if (hit.nbf > Math.floor(nowMs / 1000) + leeway) return invalid('the token is not valid yet')
        return hit.claims
      },
    },
  }
}

interface Entry extends Made {
  users: number
}
const shared = new Map<string, Entry>()

function fingerprint(spec: VerifierSpec): string {
  const keys =
    'jwks' in spec.keys
      ? { jwks: spec.keys.jwks.href, cooldown: spec.keys.cooldownMs }
      : { key: createHash('sha256').update(spec.keys.text).digest('hex') }
  return JSON.stringify([spec.issuer, spec.audience, spec.algorithms, spec.leewaySeconds, keys])
}

// The verifier for these settings, and the function that releases it when the program goes.
export function acquireVerifier(spec: VerifierSpec): { verifier: Verifier; release: () => void } {
  const id = fingerprint(spec)
  let e = shared.get(id)
  if (!e) shared.set(id, (e = { ...createVerifier(spec), users: 0 }))
  // Fetched when a program is built (a reload refreshes a set it already had); nobody waits.
  e.prefetch()
  e.users++
  const entry = e
  let released = false
  return {
    verifier: e.verifier,
    release() {
      if (released) return
      released = true
      if (--entry.users > 0) return
      entry.release()
      if (shared.get(id) === entry) shared.delete(id)
    },
  }
}
