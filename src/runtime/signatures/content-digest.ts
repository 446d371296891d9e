// RFC 9530 Content-Digest: a dictionary of algorithm → byte sequence over the body's bytes.
// The gateway checks sha-256 and sha-512 (every one present must match, at least one must be
// there); other algorithms are ignored, as the RFC lets a recipient do.
import { createHash } from 'node:crypto'
import { isInnerList, parseDictionary } from 'structured-headers'

const HASHES: Record<string, string> = { 'sha-256': 'sha256', 'sha-512': 'sha512' }

// null when the header matches the body; otherwise why not (never the expected digest).
export function contentDigestProblem(header: string, body: Uint8Array): string | null {
  let dict
  try {
    dict = parseDictionary(header)
  } catch {
    return 'the Content-Digest header is not a valid structured field'
  }
  let checked = 0
  for (const [alg, member] of dict) {
    const hash = HASHES[alg]
    if (!hash) continue
    const value = isInnerList(member) ? null : member[0]
    if (!(value instanceof ArrayBuffer)) return `the Content-Digest ${alg} is not a byte sequence`
    if (!createHash(hash).update(body).digest().equals(new Uint8Array(value))) return `the request body does not match its Content-Digest (${alg})`
    checked++
  }
  return checked ? null : 'the Content-Digest has neither sha-256 nor sha-512'
}

// `sha-256=:…:` for a body: what a signer sends (tests and the partner recipe use the same form).
export function contentDigestOf(body: Uint8Array | string): string {
  return `sha-256=:${createHash('sha256').update(body).digest('base64')}:`
}
