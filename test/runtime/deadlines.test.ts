// The shared deadline clock: watched entries expire once their deadline passes, in any order
// of watching and unwatching, and the slots it keeps them in are reused.
import { expect, test } from 'bun:test'
import { unwatchDeadline, watchDeadline, watchedDeadlines, type Timed } from '../../src/runtime/client/deadlines.ts'

function timed(inMs: number, expired: string[], name: string): Timed {
  const t: Timed = {
    deadline: performance.now() + inMs,
    deadlineSlot: -1,
    expire() {
      expired.push(name)
      unwatchDeadline(t)
    },
  }
  return t
}

async function until(done: () => boolean, ms = 2_000): Promise<void> {
  const end = performance.now() + ms
  while (!done()) {
    if (performance.now() > end) throw new Error('timed out waiting')
    await Bun.sleep(5)
  }
}

test('only what is still watched expires, each once, and unwatching frees the slot for reuse', async () => {
  const expired: string[] = []
  const a = timed(20, expired, 'a')
  const b = timed(20, expired, 'b')
  const c = timed(60_000, expired, 'c')
  watchDeadline(a)
  watchDeadline(b)
  watchDeadline(c)
  watchDeadline(a) // twice: still one entry
  expect(watchedDeadlines()).toBe(3)
  unwatchDeadline(b)
  unwatchDeadline(b) // twice: no effect
  expect(watchedDeadlines()).toBe(2)
  const d = timed(20, expired, 'd')
  watchDeadline(d) // takes b's slot
  expect(d.deadlineSlot).toBe(1)
  await until(() => expired.length === 2)
  expect(expired.sort()).toEqual(['a', 'd'])
  expect(watchedDeadlines()).toBe(1)
  unwatchDeadline(c)
  expect(watchedDeadlines()).toBe(0)
})

test('an expiry that unwatches another in the same tick: that one does not expire', async () => {
  const expired: string[] = []
  // Both due in the same tick; whichever the clock reaches first settles the other.
  const pair: Timed[] = ['one', 'other'].map((name, i) => {
    const t: Timed = {
      deadline: performance.now() + 10,
      deadlineSlot: -1,
      expire() {
        expired.push(name)
        unwatchDeadline(t)
        unwatchDeadline(pair[1 - i]!)
      },
    }
    return t
  })
  for (const t of pair) watchDeadline(t)
  await until(() => watchedDeadlines() === 0)
  await Bun.sleep(30) // a few more ticks
  expect(expired).toHaveLength(1)
})

test('many watched at once (a burst of requests) all expire', async () => {
  const expired: string[] = []
  const all = Array.from({ length: 500 }, (_, i) => timed(i % 2 === 0 ? 15 : 60_000, expired, String(i)))
  for (const t of all) watchDeadline(t)
  await until(() => expired.length === 250)
  expect(watchedDeadlines()).toBe(250)
  for (const t of all) unwatchDeadline(t)
  expect(watchedDeadlines()).toBe(0)
  expect(new Set(expired).size).toBe(250)
})
