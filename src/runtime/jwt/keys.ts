// What a `require jwt` key is (a PEM public key or certificate, a JWK set, or a shared secret)
// and which JWS algorithms it can verify. The checker and the compiler read the same text the
// same way, so a key that checks clean compiles.
import type { JSONWebKeySet, JWK } from 'jose'
import { createPublicKey, X509Certificate, type KeyObject, type webcrypto } from 'node:crypto'

// Without `algorithms`, only these: a public key can never be used as an HMAC secret.
export const ASYMMETRIC = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const
export const SYMMETRIC = ['HS256', 'HS384', 'HS512'] as const
export const ALGORITHMS: readonly string[] = [...ASYMMETRIC, ...SYMMETRIC]

export const isSymmetric = (alg: string) => (SYMMETRIC as readonly string[]).includes(alg)

// RFC 7518 §3.2: an HMAC key at least as long as the hash.
export const MIN_SECRET_BYTES: Readonly<Record<string, number>> = { HS256: 32, HS384: 48, HS512: 64 }

export type KeyMaterial =
  | { kind: 'public'; key: KeyObject; fits: string[]; describe: string }
  | { kind: 'jwks'; jwks: JSONWebKeySet; fits: string[]; describe: string }
  | { kind: 'secret'; bytes: Uint8Array }

const CURVE_ALG: Record<string, string> = { prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' }

// The algorithms a public key can verify, or why it cannot be used.
function fitsOf(key: KeyObject): { fits: string[]; describe: string } | string {
  const type = key.asymmetricKeyType
  const d = key.asymmetricKeyDetails ?? {}
  if (type === 'rsa' || type === 'rsa-pss') {
    const bits = d.modulusLength ?? 0
    if (bits < 2048) return `the RSA key has ${bits} bits; JWT signatures need at least 2048`
    const ps = ['PS256', 'PS384', 'PS512']
    return { fits: type === 'rsa' ? ['RS256', 'RS384', 'RS512', ...ps] : ps, describe: `an ${bits}-bit RSA key` }
  }
  if (type === 'ec') {
    const alg = CURVE_ALG[d.namedCurve ?? '']
    return alg ? { fits: [alg], describe: `an EC ${d.namedCurve} key` } : `the EC curve ${d.namedCurve} is not used for JWT signatures`
  }
  if (type === 'ed25519') return { fits: ['EdDSA', 'Ed25519'], describe: 'an Ed25519 key' }
  return `the key type ${type} cannot verify JWT signatures`
}

function fromJwks(text: string): KeyMaterial | string {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return 'the key starts like JSON but is not valid JSON'
  }
  const o = parsed as { keys?: unknown; kty?: unknown }
  const keys = Array.isArray(o?.keys) ? (o.keys as JWK[]) : typeof o?.kty === 'string' ? [o as JWK] : null
  if (!keys || keys.length === 0) return 'the JSON is neither a JWK nor a JWK set ({"keys": […]})'
  const fits = new Set<string>()
  for (const [i, jwk] of keys.entries()) {
    const which = keys.length === 1 ? 'the JWK' : `JWK #${i + 1}`
    if (jwk.kty === 'oct') return `${which} is a symmetric key: give a shared secret as plain text instead`
    if (jwk.d !== undefined) return `${which} is a private key; the gateway only needs the public key`
    let key: KeyObject
    try {
      key = createPublicKey({ key: jwk as webcrypto.JsonWebKey, format: 'jwk' })
    } catch {
      return `${which} cannot be read as a public key`
    }
    const f = fitsOf(key)
    if (typeof f === 'string') return `${which}: ${f}`
    for (const a of f.fits) if (jwk.alg === undefined || jwk.alg === a) fits.add(a)
  }
  return { kind: 'jwks', jwks: { keys }, fits: [...fits], describe: `a set of ${keys.length} JWK${keys.length === 1 ? '' : 's'}` }
}

// The key's text → what it is, or a message saying why it cannot be used.
export function readKeyMaterial(text: string): KeyMaterial | string {
  let trimmed = text.trim()
  const pem = /^-----BEGIN ([A-Z0-9 ]+)-----/.exec(trimmed)
  // A PEM in an environment variable often comes on one line, its newlines written as \n.
  if (pem && !trimmed.includes('\n')) trimmed = trimmed.replaceAll('\\n', '\n')
  if (pem) {
    const label = pem[1]!
    if (label.includes('PRIVATE')) return 'the PEM holds a private key; give the public key (the gateway only verifies)'
    let key: KeyObject
    try {
      key = label === 'CERTIFICATE' ? new X509Certificate(trimmed).publicKey : createPublicKey(trimmed)
    } catch {
      return `the PEM (${label}) cannot be read as a public key or certificate`
    }
    const f = fitsOf(key)
    return typeof f === 'string' ? f : { kind: 'public', key, ...f }
  }
  if (trimmed.startsWith('{')) return fromJwks(trimmed)
  // Anything else is an HMAC secret, used byte for byte.
  return { kind: 'secret', bytes: new TextEncoder().encode(text) }
}

// The algorithms a route accepts: those listed (each must fit the key), else the asymmetric
// ones the key fits. A message says why the list cannot be used.
export function algorithmsFor(listed: readonly string[] | null, keys: KeyMaterial | 'jwks'): string[] | string {
  if (keys === 'jwks') {
    const hs = listed?.filter(isSymmetric) ?? []
    if (hs.length) return `${hs.join(', ')} needs a shared secret (key env NAME or key file "path"); a JWK set holds public keys`
    return listed ? [...listed] : [...ASYMMETRIC]
  }
  if (keys.kind === 'secret') {
    if (!listed)
      return 'the key is not a PEM public key or a JWK set; to use it as a shared secret, name the algorithms: algorithms HS256 (or HS384, HS512)'
    const other = listed.filter((a) => !isSymmetric(a))
    if (other.length) return `${other.join(', ')} needs a public key, but the key is a shared secret`
    const short = listed.filter((a) => keys.bytes.length < MIN_SECRET_BYTES[a]!)
    if (short.length) return `a ${short[0]} secret must be at least ${MIN_SECRET_BYTES[short[0]!]} bytes long; this one has ${keys.bytes.length}`
    return [...listed]
  }
  if (!listed) return keys.fits.length ? keys.fits.filter((a) => (ASYMMETRIC as readonly string[]).includes(a)) : `${keys.describe} fits no algorithm`
  const hs = listed.filter(isSymmetric)
  if (hs.length)
    return `${hs.join(', ')} needs a shared secret, but the key is ${keys.describe} (accepting HMAC with a public key is the key-confusion attack)`
  const misfits = listed.filter((a) => !keys.fits.includes(a))
  if (misfits.length) return `${misfits.join(', ')} does not fit ${keys.describe} (it fits ${keys.fits.join(', ')})`
  return [...listed]
}
