// One shared clock for every upstream exchange: a single interval checks the deadlines of
// the exchanges in flight, instead of a timer (or AbortSignal.timeout) per request.
export interface Timed {
  deadline: number // performance.now() value; Infinity when nothing is awaited
  expire(now: number): void
}

const TICK_MS = 10
// The clock stops after this many ticks with nothing to watch, not at the first: under load
// the set empties and refills all the time, and a timer made and cleared per burst costs more
// than the idle ticks.
const IDLE_TICKS = 100
const live = new Set<Timed>()
let timer: ReturnType<typeof setInterval> | null = null
let idleTicks = 0

function tick(): void {
  if (live.size === 0) {
    if (++idleTicks >= IDLE_TICKS && timer) {
      clearInterval(timer)
      timer = null
    }
    return
  }
  idleTicks = 0
  const now = performance.now()
  for (const t of live) if (t.deadline <= now) t.expire(now)
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
