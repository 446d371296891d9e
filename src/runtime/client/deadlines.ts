// One shared clock for every upstream exchange: a single interval checks the deadlines of
// the exchanges in flight, instead of a timer (or AbortSignal.timeout) per request.
export interface Timed {
  deadline: number // performance.now() value; Infinity when nothing is awaited
  expire(now: number): void
}

const TICK_MS = 10
const live = new Set<Timed>()
let timer: ReturnType<typeof setInterval> | null = null

function tick(): void {
  const now = performance.now()
  for (const t of live) if (t.deadline <= now) t.expire(now)
  if (live.size === 0 && timer) {
    clearInterval(timer)
    timer = null
  }
}

export function watchDeadline(t: Timed): void {
  live.add(t)
  if (!timer) {
    timer = setInterval(tick, TICK_MS)
    timer.unref()
  }
}

export function unwatchDeadline(t: Timed): void {
  live.delete(t)
}
