// The upstream's answer fields as the client gets them: hop-by-hop fields (and those its
// Connection field names) and Gateway-Error removed, everything else as sent, repeats kept.
import { isHopByHop } from '../headers.ts'

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
    const lower = field[0].toLowerCase()
    if (isHopByHop(lower) || lower === 'gateway-error' || (named !== null && named.includes(lower))) continue
    // A streamed body is framed anew for the client; its length then travels only when known.
    if (!keepLength && lower === 'content-length') continue
    out.push(field)
  }
  return out
}
