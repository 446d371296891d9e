// ioredis skips its diagnostics tracing only when the channel says nobody listens; Bun 1.4.5's
// TracingChannel had no hasSubscribers, so every command was traced for nobody. With the store
// loaded, the channel answers as Node's does, and a subscriber still sees the commands.
import { expect, test } from 'bun:test'
import { tracingChannel } from 'node:diagnostics_channel'
import { redisStore } from '../../src/store/redis.ts'

const PREFIX = `portcullis-test:tracing-channel:${process.pid}:${Date.now()}:`

test('ioredis:command says whether anyone listens, and a listener sees the store commands', async () => {
  const channel = tracingChannel('ioredis:command')
  expect(channel.hasSubscribers).toBe(false)
  const store = redisStore('redis://127.0.0.1:6379', { prefix: PREFIX })
  try {
    await store.ping()
    const seen: string[] = []
    const handlers = {
      start: (m: unknown) => void seen.push(String((m as { command?: string }).command)),
      end: () => {},
      asyncStart: () => {},
      asyncEnd: () => {},
      error: () => {},
    }
    channel.subscribe(handlers)
    expect(channel.hasSubscribers).toBe(true)
    await store.ping()
    expect(await store.hit([{ kind: 'sliding', key: `{t}:k`, limit: 5, windowMs: 1_000 }], Date.now())).toMatchObject({ admitted: true })
    channel.unsubscribe(handlers)
    expect(channel.hasSubscribers).toBe(false)
    // (The app-change subscription may also be on its way; the script goes as EVAL or EVALSHA.)
    const commands = seen.map((c) => c.toLowerCase())
    expect(commands).toContain('ping')
    expect(commands.filter((c) => c.startsWith('eval'))).toHaveLength(1)
  } finally {
    await store.close()
  }
})
