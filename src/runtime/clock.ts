// The system's wall clock to the microsecond. Date.now() counts whole milliseconds: two
// readings 1000 apart may be 999.1 ms apart, which a limit of N in every second cannot
// afford. performance.now() is monotonic and fine-grained; anchored to the wall clock once, it
// reads the same time with a fraction (behind it by the anchor's rounding, under 1 ms).
// A wall clock stepped by a second or more (NTP, a resumed VM) is followed: the clocks are
// anchored anew. Smaller gaps are not: a thread descheduled between the two readings would
// look like one, and anchoring anew moves the clock by up to a millisecond either way.
const STEP_MS = 1_000
let anchor = Date.now() - performance.now()

export function systemNow(): number {
  const t = anchor + performance.now()
  const wall = Date.now()
  if (t > wall - STEP_MS && t < wall + STEP_MS) return t
  anchor = wall - performance.now()
  return wall
}
