// The Redis of the rows that need one (gateway-throttle-redis, the sink rows). With
// redis-server on PATH the bench starts its own on a free port, pinned with the upstream and
// the load generator: Redis is a backend like the upstream (in production, on a machine of its
// own), and left free to run on the proxy's core it would charge its own CPU to the gateway's
// row. Without it, the machine's Redis on 127.0.0.1:6379, not pinned; a note says which.
import { freePorts, spawnChild, stop, watchChild } from './children.ts'

export const SHARED_REDIS_URL = 'redis://127.0.0.1:6379'

export interface BenchRedis {
  url: string
  pid: number | undefined // the bench's own server's (its CPU is read around the Redis rows)
  note: string
  close(): Promise<void>
}

const ATTEMPTS = 3 // another process may take the free port before redis-server binds it

export async function benchRedis(side: string[], readyMs: number): Promise<BenchRedis> {
  const binary = Bun.which('redis-server')
  const shared = (why: string): BenchRedis => ({
    url: SHARED_REDIS_URL,
    pid: undefined,
    note: `Redis rows: the machine's Redis on ${SHARED_REDIS_URL}, not pinned (${why}): it may run on the proxy's core`,
    close: async () => {},
  })
  if (!binary) return shared('redis-server not on PATH')
  let last = ''
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const [port = 0] = freePorts(1)
    const child = spawnChild([...side, binary, '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], process.cwd())
    const watched = watchChild(child, (line) => /ready to accept connections/i.test(line), readyMs)
    try {
      await watched.ready
      const where = side.length ? `pinned with the load (${side.join(' ')})` : 'not pinned'
      return {
        url: `redis://127.0.0.1:${port}`,
        pid: child.pid,
        note: `Redis rows: the bench's own redis-server on 127.0.0.1:${port}, ${where}`,
        close: async () => {
          await stop(child, 2_000)
        },
      }
    } catch (err) {
      last = `${err instanceof Error ? err.message : String(err)}: ${watched.tail.slice(-3).join(' | ')}`
      await stop(child, 1_000)
    }
  }
  return shared(`redis-server did not start: ${last}`)
}
