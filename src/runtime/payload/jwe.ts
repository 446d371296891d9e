// Compact JWE (RFC 7516) with jose: `dir` + A256GCM with a derived key, or RSA-OAEP-256 /
// ECDH-ES+A256KW (A256GCM content) to an app's public key. Decryption accepts `dir` + A256GCM
// only: the algorithms are pinned, never taken from the message.
import type { KeyObject } from 'node:crypto'
import { CompactEncrypt, compactDecrypt, decodeProtectedHeader, type CompactJWEHeaderParameters } from 'jose'

export const ENC = 'A256GCM'
const EC_CURVES = new Set(['prime256v1', 'secp384r1', 'secp521r1'])

// The key-management algorithm for encrypting to a public key, or null when the key cannot
// encrypt (an ed25519 or RSA-PSS signing key, say).
export function algorithmFor(key: KeyObject): 'RSA-OAEP-256' | 'ECDH-ES+A256KW' | null {
  if (key.asymmetricKeyType === 'rsa') return 'RSA-OAEP-256'
  if (key.asymmetricKeyType === 'x25519') return 'ECDH-ES+A256KW'
  if (key.asymmetricKeyType === 'ec' && EC_CURVES.has(key.asymmetricKeyDetails?.namedCurve ?? '')) return 'ECDH-ES+A256KW'
  return null
}

// `kid` is the app's key id (omitted for an app without one, encrypting to its public key).
function header(alg: string, kid: string | null, cty: string | null): CompactJWEHeaderParameters {
  const h: CompactJWEHeaderParameters = { alg, enc: ENC }
  if (kid !== null) h.kid = kid
  if (cty !== null) h.cty = cty
  return h
}

// `dir` + A256GCM with a 32-byte key.
export function encryptDirect(plaintext: Uint8Array, key: Uint8Array, kid: string, cty: string | null): Promise<string> {
  return new CompactEncrypt(plaintext).setProtectedHeader(header('dir', kid, cty)).encrypt(key)
}

// To a public key (its algorithm from algorithmFor, checked by the caller).
export function encryptTo(plaintext: Uint8Array, key: KeyObject, kid: string | null, cty: string | null): Promise<string> {
  const alg = algorithmFor(key)
  if (alg === null) throw new Error(`a ${key.asymmetricKeyType} key cannot encrypt`)
  return new CompactEncrypt(plaintext).setProtectedHeader(header(alg, kid, cty)).encrypt(key)
}

export type Decrypted = { plaintext: Uint8Array; cty: string | null } | { problem: string }

const COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/

// A compact `dir` + A256GCM JWE made with one of `keys` (tried in order) for the key id `kid`.
// The problem never holds anything of the plaintext or the keys.
export async function decryptDirect(jwe: string, keys: readonly Uint8Array[], kid: string): Promise<Decrypted> {
  if (!COMPACT.test(jwe)) return { problem: 'the body is not a compact JWE (five base64url parts)' }
  let h
  try {
    h = decodeProtectedHeader(jwe)
  } catch {
    return { problem: 'the JWE protected header is not valid' }
  }
  if (h.alg !== 'dir' || h.enc !== ENC) return { problem: `the JWE must use alg "dir" and enc "${ENC}"` }
  if (h.kid !== undefined && h.kid !== kid) return { problem: 'the JWE kid is not the key id of the calling app' }
  if (h.zip !== undefined) return { problem: 'compressed JWE (zip) is not accepted' }
  if (h.cty !== undefined && typeof h.cty !== 'string') return { problem: 'the JWE cty is not a string' }
  for (const key of keys) {
    try {
      const r = await compactDecrypt(jwe, key, { keyManagementAlgorithms: ['dir'], contentEncryptionAlgorithms: [ENC] })
      return { plaintext: r.plaintext, cty: typeof r.protectedHeader.cty === 'string' ? r.protectedHeader.cty : null }
    } catch {
      // A wrong key and a tampered message look the same: try the next secret.
    }
  }
  return { problem: 'the JWE does not decrypt with the request key of the calling app' }
}

// RFC 7515 §4.1.10: a `cty` without a `/` means application/<cty>.
export function mediaTypeOf(cty: string): string {
  return cty.includes('/') ? cty : `application/${cty}`
}
