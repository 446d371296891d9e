// Redis through ioredis: short command timeouts, reconnecting by itself, never
// queueing commands while disconnected (a down store is an answer, not a hang).
import Redis from 'ioredis'
import type { Store } from './store.ts'

export const STORE_TIMEOUT_MS = 500
const CONNECT_TIMEOUT_MS = 1000

export function redisStore(url: string): Store {
  const client = new Redis(url, {
    lazyConnect: false,
    enableOfflineQueue: false,
    commandTimeout: STORE_TIMEOUT_MS,
    connectTimeout: CONNECT_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  })
  let lastError = ''
  client.on('error', (err: Error) => {
    if (err.message !== lastError) console.error(`portcullis: redis: ${err.message}`)
    lastError = err.message
  })
  client.on('ready', () => (lastError = ''))
  // Resolves when the connection attempt under way succeeds or fails, or after its timeout.
  const connectOutcome = () =>
    new Promise<void>((resolve) => {
      const events = ['ready', 'error', 'close'] as const
      const done = () => {
        clearTimeout(timer)
        for (const e of events) client.off(e, done)
        resolve()
      }
      const timer = setTimeout(done, CONNECT_TIMEOUT_MS)
      for (const e of events) client.once(e, done)
    })
  return {
    kind: 'redis',
    async ping() {
      // A connection being made (at start-up, say) is waited for, not reported as down.
      if (client.status === 'connecting' || client.status === 'connect') await connectOutcome()
      if (client.status !== 'ready') throw new Error(`redis is ${client.status}`)
      await client.ping()
    },
    async close() {
      client.disconnect()
    },
  }
}
