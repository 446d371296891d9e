// Helpers for the throttle and quota tests: concurrent volleys with the client-side times of
// each answer, RateLimit header checks, header values built to collide.
import { expect } from 'bun:test'
import { until } from './poll.ts'

// One answer, read to the end, with when it was sent and received (performance.now()).
export interface Answer {
  status: number
  code: string | null // Gateway-Error
  headers: Headers
  body: string
  sent: number
  received: number
}

export async function answer(send: () => Promise<Response>): Promise<Answer> {
  const sent = performance.now()
  const res = await send()
  const body = await res.text()
  return { status: res.status, code: res.headers.get('gateway-error'), headers: res.headers, body, sent, received: performance.now() }
}

// `n` requests at once; their answers in the order they were made.
export function volley(n: number, send: (i: number) => Promise<Response>): Promise<Answer[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => answer(() => send(i))))
}

// How many answers had each status.
export function statuses(answers: readonly Answer[]): Record<number, number> {
  const out: Record<number, number> = {}
  for (const a of answers) out[a.status] = (out[a.status] ?? 0) + 1
  return out
}

const num = (a: Answer, name: string) => {
  const v = a.headers.get(name)
  expect(v, `${name} on a ${a.status}`).toMatch(/^\d+$/)
  return Number(v)
}

// The RateLimit headers of one answer: the tightest limit (`limit`, named `name`) and the
// route's whole policy list. Returns the remaining count and the reset in seconds.
export function expectRateHeaders(
  a: Answer,
  o: { limit: number; name: string; policy: string; maxReset: number },
): { remaining: number; reset: number } {
  expect(a.headers.get('ratelimit-limit')).toBe(String(o.limit))
  const remaining = num(a, 'ratelimit-remaining')
  const reset = num(a, 'ratelimit-reset')
  expect(remaining).toBeLessThanOrEqual(o.limit)
  expect(reset).toBeLessThanOrEqual(o.maxReset)
  expect(a.headers.get('ratelimit-policy')).toBe(o.policy)
  expect(a.headers.get('ratelimit')).toBe(`"${o.name}";r=${remaining};t=${reset}`)
  return { remaining, reset }
}

// A refusal: 429 with the code, a Retry-After in whole seconds within `maxRetry`, no upstream.
export function expectRefused(a: Answer, code: 'rate_limited' | 'quota_exceeded', maxRetry: number): number {
  expect(a.status).toBe(429)
  expect(a.code).toBe(code)
  expect(a.headers.get('content-type')).toBe('application/problem+json')
  const retry = num(a, 'retry-after')
  expect(retry).toBeGreaterThanOrEqual(1)
  expect(retry).toBeLessThanOrEqual(maxRetry)
  return retry
}

// No `limit + 1` admissions fit in one window. The gateway decided each admission somewhere
// between its request's send and receive times, so any `limit + 1` admissions span at least
// `windowMs` only if the last receive minus the first send of them is at least that. (Client
// times bound the gateway's from outside: this fails only when the gateway admitted too many.)
export function expectAtMostPerWindow(admitted: readonly Answer[], limit: number, windowMs: number): void {
  const bySend = [...admitted].sort((x, y) => x.sent - y.sent)
  const tooClose: string[] = []
  for (let i = 0; i + limit < bySend.length; i++) {
    const span = Math.max(...bySend.slice(i, i + limit + 1).map((a) => a.received)) - bySend[i]!.sent
    if (span < windowMs) tooClose.push(`admissions ${i}..${i + limit} within ${span.toFixed(1)} ms`)
  }
  expect(tooClose).toEqual([])
}

// The value of one Prometheus series (`name{labels}`), or undefined.
export function series(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `))
  return line === undefined ? undefined : Number(line.slice(name.length + 1))
}

const LONG = 'x'.repeat(10 * 1024)

// Header or claim values built to collide if a key were made by joining or truncating them:
// separators, Redis hash-tag braces, case, 10 KB values differing in one byte, look-alike NULs.
export const COLLIDING: readonly string[] = [
  'acme',
  'ACME',
  'Acme',
  'a:b',
  'a',
  'b',
  'a:',
  ':b',
  'a\\0b',
  '%00',
  '{acme}',
  '{',
  '}',
  '}{',
  '{a}:{b}',
  'rl:{x}:throttle',
  'ümlaut',
  LONG,
  `${LONG.slice(1)}y`,
  `y${LONG.slice(1)}`,
  'a, b',
]

export { until }
