// The upstream's answer fields as the client gets them: hop-by-hop fields (and those its
// Connection field names) and Gateway-Error removed, everything else as sent, repeats kept.
import { HOP_BY_HOP_NAMES, isHopByHop } from '../headers.ts'

// The lengths of the names that may be dropped (hop-by-hop, gateway-error, content-length):
// a field of another length is kept without lower-casing its name.
const DROPPABLE_LENGTHS = new Uint8Array(32)
for (const name of [...HOP_BY_HOP_NAMES, 'gateway-error', 'content-length']) DROPPABLE_LENGTHS[Math.min(name.length, 31)] = 1

export function responseHeaders(fields: readonly [string, string][], keepLength: boolean): [string, string][] {
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
  const out: [string, string][] = []
  for (const field of fields) {
    const length = field[0].length
    if (named === null && DROPPABLE_LENGTHS[Math.min(length, 31)] === 0) {
      out.push(field)
      continue
    }
    const lower = field[0].toLowerCase()
    if (isHopByHop(lower) || lower === 'gateway-error' || (named !== null && named.includes(lower))) continue
    // A streamed body is framed anew for the client; its length then travels only when known.
    if (!keepLength && lower === 'content-length') continue
    out.push(field)
  }
  return out
}
