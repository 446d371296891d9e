// Forwarding remembers verdicts on header names, and their canonical forms, to skip the work on
// the next request. The client picks the names: thousands of distinct kilobyte-long ones must
// not make the gateway hold their text, and each is still forwarded.
import { expect, test } from 'bun:test'
import type { CompiledRoute } from '../../src/runtime/context.ts'
import { forwardedHeaderLines, type ForwardFacts } from '../../src/runtime/forward.ts'

test('thousands of distinct 8 KB header names: each forwarded, none of their text kept', () => {
  const route = { forwardVerdicts: new Map(), protectedHeaders: new Set<string>() } as unknown as CompiledRoute
  const facts = {
    trusted: false,
    trace: null,
    replaced: null,
    peerIp: '127.0.0.1',
    proto: 'http',
    hostHeader: 'gw',
    port: 80,
    ip: '127.0.0.1',
    id: 'r1',
    consumer: null,
  } as unknown as ForwardFacts
  const name = (i: number) => `x-${'n'.repeat(8 * 1024)}-${i}`
  for (let i = 0; i < 100; i++) forwardedHeaderLines(new Headers([[`x-warm-${i}`, 'v']]), route, facts)
  Bun.gc(true)
  const before = process.memoryUsage().heapUsed
  for (let i = 0; i < 2000; i++) {
    const lines = forwardedHeaderLines(new Headers([[name(i), 'v']]), route, facts)
    expect(lines.startsWith(`${name(i)}: v\r\n`)).toBe(true)
  }
  Bun.gc(true)
  // Kept, the names alone would be 2000 × 8 KB = 16 MB, twice over (the verdicts and the
  // canonical names).
  expect(process.memoryUsage().heapUsed - before).toBeLessThan(4 * 1024 * 1024)
})
