// The system's wall clock to the microsecond. Date.now() counts whole milliseconds: two
// readings 1000 apart may be 999.1 ms apart, which a limit of N in every second cannot
// afford. performance.now() is monotonic and fine-grained; anchored to the wall clock, it
// reads the same time with a fraction. A wall clock that is stepped (NTP, a resumed VM) is
// followed: when the two part by more than the anchor's own rounding, they are anchored anew.
let anchor = Date.now() - performance.now()

export function systemNow(): number {
  const t = anchor + performance.now()
  const wall = Date.now()
  if (t > wall - 2 && t < wall + 2) return t
  anchor = wall - performance.now()
  return wall
}
