// The upstream's answer fields as the client gets them: hop-by-hop fields (and those its
// Connection field names) and Gateway-Error removed, everything else as sent, repeats kept;
// then the gateway's own fields, set over the upstream's as Headers.set would.
import { HOP_BY_HOP_NAMES, isHopByHop } from '../headers.ts'

// The lengths of the names that may be dropped (hop-by-hop, gateway-error, content-length):
// a field of another length is kept without lower-casing its name.
const DROPPABLE_LENGTHS = new Uint8Array(32)
for (const name of [...HOP_BY_HOP_NAMES, 'gateway-error', 'content-length']) DROPPABLE_LENGTHS[Math.min(name.length, 31)] = 1

// `own`: the gateway's fields (X-Request-Id, the access stage's RateLimit and Deprecation). An
// upstream field of the same name is dropped, and of the gateway's the last of a name wins.
export function responseHeaders(
  fields: readonly [string, string][],
  keepLength: boolean,
  own: readonly [string, string][] | null = null,
): [string, string][] {
  let named: string[] | null = null
  for (const [name, value] of fields) {
    if (name.length === 10 && name.toLowerCase() === 'connection')
      (named ??= []).push(
        ...value
          .toLowerCase()
          .split(',')
          .map((t) => t.trim()),
      )
  }
  let ownNames: string[] | null = null
  let ownPairs: [string, string][] | null = null
  let ownLengths = 0 // a bit per name length below 31; bit 31 for longer ones
  if (own !== null && own.length > 0) {
    ownNames = []
    ownPairs = []
    for (let i = own.length - 1; i >= 0; i--) {
      const lower = own[i]![0].toLowerCase()
      if (ownNames.includes(lower)) continue
      ownNames.push(lower)
      ownPairs.push([lower, own[i]![1]])
      ownLengths |= 1 << Math.min(lower.length, 31)
    }
    ownPairs.reverse()
  }
  const out: [string, string][] = []
  for (const field of fields) {
    const length = Math.min(field[0].length, 31)
    const maybeOwn = (ownLengths & (1 << length)) !== 0
    if (named === null && !maybeOwn && DROPPABLE_LENGTHS[length] === 0) {
      out.push(field)
      continue
    }
    const lower = field[0].toLowerCase()
    if (isHopByHop(lower) || lower === 'gateway-error' || (named !== null && named.includes(lower))) continue
    if (maybeOwn && ownNames!.includes(lower)) continue
    // A streamed body is framed anew for the client; its length then travels only when known.
    if (!keepLength && lower === 'content-length') continue
    out.push(field)
  }
  if (ownPairs !== null) for (const pair of ownPairs) out.push(pair)
  return out
}
