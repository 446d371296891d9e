// The kit's clock: the one time source of a kit gateway's throttles, quotas, signature windows,
// JWT expiry, session lifetimes and key rotation windows. It moves only when the test moves it.
import { durationMs } from '../policy/literals.ts'

export type Instant = Date | number | string // a Date, ms since the epoch, or an ISO 8601 text
export type Duration = number | string // ms, or a policy duration like `90s`, `15m`, `1d`

export function instantMs(t: Instant): number {
  const ms = t instanceof Date ? t.getTime() : typeof t === 'number' ? t : Date.parse(t)
  if (!Number.isFinite(ms)) throw new Error(`not a time: ${String(t)} (give a Date, ms since the epoch or an ISO 8601 text)`)
  return ms
}

export function durationOf(d: Duration): number {
  if (typeof d === 'number') {
    if (!Number.isFinite(d) || d < 0) throw new Error(`not a duration: ${d} (give ms ≥ 0)`)
    return d
  }
  const text = d.replace(/\s+/g, '')
  if (!/^\d+(ms|s|m|h|d)$/.test(text)) throw new Error(`not a duration: '${d}' (like 500ms, 90s, 15m, 2h or 1d)`)
  return durationMs(text)
}

export class KitClock {
  private t: number

  constructor(start: Instant = Date.now()) {
    this.t = instantMs(start)
  }

  // ms since the epoch. A bound function: the gateway calls it as `now()`.
  readonly now = (): number => this.t

  date(): Date {
    return new Date(this.t)
  }

  advance(d: Duration): number {
    this.t += durationOf(d)
    return this.t
  }

  set(t: Instant): number {
    this.t = instantMs(t)
    return this.t
  }
}
