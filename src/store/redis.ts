// Redis through ioredis: short command timeouts, reconnecting by itself, never
// queueing commands while disconnected (a down store is an answer, not a hang).
import Redis from 'ioredis'
import type { Store } from './store.ts'

export const STORE_TIMEOUT_MS = 500

export function redisStore(url: string): Store {
  const client = new Redis(url, {
    lazyConnect: false,
    enableOfflineQueue: false,
    commandTimeout: STORE_TIMEOUT_MS,
    connectTimeout: 1000,
    maxRetriesPerRequest: 0,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  })
  let lastError = ''
  client.on('error', (err: Error) => {
    if (err.message !== lastError) console.error(`portcullis: redis: ${err.message}`)
    lastError = err.message
  })
  client.on('ready', () => (lastError = ''))
  return {
    kind: 'redis',
    async ping() {
      if (client.status !== 'ready') throw new Error(`redis is ${client.status}`)
      await client.ping()
    },
    async close() {
      client.disconnect()
    },
  }
}
