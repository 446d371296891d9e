// Request ids without a random draw per request: a random prefix drawn once per process
// (80 bits, so restarts and worker processes never share one), then a counter:
// `<16 base32 chars>-<counter / 4096 in base36><counter % 4096 as 3 base32 digits>`.
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz' // Crockford's base32: no i, l, o, u

function randomPrefix(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(10))
  let out = ''
  let acc = 0
  let bits = 0
  for (const b of bytes) {
    acc = ((acc << 8) | b) & 0xfff
    bits += 8
    while (bits >= 5) {
      bits -= 5
      out += ALPHABET[(acc >>> bits) & 31]
    }
  }
  return out
}

const PREFIX = `${randomPrefix()}-`
// The counter's low 12 bits come from a table, so most ids cost one concatenation and no
// number formatting; the high part is formatted once per 4096 ids.
const LOW = Array.from({ length: 4096 }, (_, i) => i.toString(32).padStart(3, '0'))
let high = 0
let low = 0
let head = `${PREFIX}0`

// What newRequestId() returns; a trusted client's X-Request-Id may have other forms.
export const GENERATED_REQUEST_ID = /^[0-9a-hjkmnp-tv-z]{16}-[0-9a-z]{4,14}$/

export function newRequestId(): string {
  if (low === 4096) {
    low = 0
    head = PREFIX + (++high).toString(36)
  }
  return head + LOW[low++]!
}
