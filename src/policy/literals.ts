// Values of the literal tokens. The lexer already guarantees their shape.
const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
const rateUnits: Record<string, number> = {
  s: 1000,
  sec: 1000,
  second: 1000,
  min: 60_000,
  minute: 60_000,
  h: 3_600_000,
  hr: 3_600_000,
  hour: 3_600_000,
  d: 86_400_000,
  day: 86_400_000,
}
const sizeUnits: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 }

export function durationMs(text: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(text)!
  return Number(m[1]) * durationUnits[m[2]!]!
}

export interface Rate {
  limit: number
  windowMs: number
  text: string
}
export function rateOf(text: string): Rate {
  const [n, unit] = text.split('/') as [string, string]
  return { limit: Number(n), windowMs: rateUnits[unit]!, text }
}

export function sizeBytes(text: string): number {
  const m = /^(\d+)(b|kb|mb|gb)$/.exec(text)!
  return Number(m[1]) * sizeUnits[m[2]!]!
}

// `2027-06-30` is midnight UTC of that day; RFC 3339 timestamps as written. NaN when not a real date.
export function dateMs(text: string): number {
  const iso = text.length === 10 ? `${text}T00:00:00Z` : text
  const ms = Date.parse(iso)
  if (Number.isNaN(ms)) return NaN
  // The calendar day must exist (2027-02-30 does not), whatever the time and offset.
  const day = text.slice(0, 10)
  const midnight = Date.parse(`${day}T00:00:00Z`)
  return !Number.isNaN(midnight) && new Date(midnight).toISOString().slice(0, 10) === day ? ms : NaN
}
