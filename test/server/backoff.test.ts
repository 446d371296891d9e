// The restart delay of a --workers slot: doubles while workers die young, stops at the
// ceiling, and starts over once a worker has run a while.
import { expect, test } from 'bun:test'
import { Backoff, RESTART_BACKOFF } from '../../src/server/workers.ts'

test('0.5 s doubling to 30 s while workers keep dying young', () => {
  const b = new Backoff()
  const delays = Array.from({ length: 10 }, () => b.delayAfter(200))
  expect(delays).toEqual([500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000, 30_000])
})

test('a worker that ran a while resets the delay', () => {
  const b = new Backoff()
  for (let i = 0; i < 5; i++) b.delayAfter(100)
  expect(b.delayAfter(RESTART_BACKOFF.stableMs)).toBe(500)
  expect(b.delayAfter(100)).toBe(1_000)
  expect(b.delayAfter(RESTART_BACKOFF.stableMs - 1)).toBe(2_000)
})
