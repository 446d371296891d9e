// Waiting for an event that has no callback: poll, bounded, and say what was last seen.

type Truthy<T> = Exclude<T, null | undefined | false | 0 | ''>

// Polls `probe` until `ok` holds of its answer; throws after `ms` with the last answer.
export async function until<T>(probe: () => T | Promise<T>, ok: (v: T) => boolean, ms: number, what = 'condition'): Promise<T> {
  const t0 = performance.now()
  for (;;) {
    const v = await probe()
    if (ok(v)) return v
    if (performance.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms; last: ${JSON.stringify(v)}`)
    await Bun.sleep(10)
  }
}

// Polls `probe` until its answer is truthy; that answer.
export function untilTruthy<T>(probe: () => T | Promise<T>, ms = 2_000): Promise<Truthy<T>> {
  return until(probe, Boolean, ms) as Promise<Truthy<T>>
}
