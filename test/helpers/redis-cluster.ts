// Throwaway Redis servers for tests: one redis-server on a free port (to stop, freeze and
// restart mid-traffic), and a local Redis Cluster of N masters. Each keeps its files in a
// temporary directory removed on stop; servers still running when the test process exits
// are killed.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Redis from 'ioredis'
import { freePort } from './gateway.ts'

const START_TIMEOUT_MS = 5_000
const CLUSTER_TIMEOUT_MS = 15_000

const running = new Set<Bun.Subprocess>()
process.once('exit', () => {
  for (const p of running) p.kill('SIGKILL')
})

export interface RedisServer {
  readonly port: number
  readonly url: string
  // SIGKILL, and wait for the exit.
  kill(): Promise<void>
  // SIGSTOP / SIGCONT: a server that holds its connections open and answers nothing.
  freeze(): void
  thaw(): void
  // Starts it again on the same port (after kill), with the same files.
  restart(): Promise<void>
  // Kills it and removes its files.
  stop(): Promise<void>
}

// Spawns redis-server and resolves once it logs `ready`; rejects with its output when it exits
// first or does not get there in time.
async function spawnRedis(args: string[], ready: string): Promise<Bun.Subprocess<'ignore', 'pipe', 'pipe'>> {
  const proc = Bun.spawn(['redis-server', ...args], { stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' })
  running.add(proc)
  void proc.exited.then(() => running.delete(proc))
  const reader = proc.stdout.getReader()
  let out = ''
  const deadline = Date.now() + START_TIMEOUT_MS
  try {
    while (!out.includes(ready)) {
      const timeout = Bun.sleep(Math.max(0, deadline - Date.now())).then(() => ({ done: true, value: undefined }) as const)
      const { done, value } = await Promise.race([reader.read(), timeout])
      if (done) throw new Error(`redis-server ${args.join(' ')} did not start:\n${out}${await new Response(proc.stderr).text()}`)
      out += new TextDecoder().decode(value)
    }
  } catch (err) {
    proc.kill('SIGKILL')
    throw err
  } finally {
    reader.releaseLock()
  }
  void proc.stdout.pipeTo(new WritableStream())
  void proc.stderr.pipeTo(new WritableStream())
  return proc
}

// A redis-server on a free port with files in a directory of its own: `args` gives its
// arguments for a port and that directory.
async function startServer(args: (port: number, dir: string) => string[], ready: string, url: (port: number) => string): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-redis-'))
  let port = 0
  let proc: Bun.Subprocess | null = null
  // Another process may take the free port before redis-server binds it: try a few.
  for (let tries = 0; !proc; tries++) {
    port = await freePort()
    try {
      proc = await spawnRedis(args(port, dir), ready)
    } catch (err) {
      if (tries === 2) {
        rmSync(dir, { recursive: true, force: true })
        throw err
      }
    }
  }
  const kill = async () => {
    if (!proc) return
    proc.kill('SIGCONT')
    proc.kill('SIGKILL')
    await proc.exited
    proc = null
  }
  return {
    port,
    url: url(port),
    kill,
    freeze: () => proc?.kill('SIGSTOP'),
    thaw: () => proc?.kill('SIGCONT'),
    async restart() {
      await kill()
      proc = await spawnRedis(args(port, dir), ready)
    },
    async stop() {
      await kill()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

// One redis-server on a free port, bound to 127.0.0.1, nothing persisted. `extra` adds flags.
export function startRedis(extra: string[] = []): Promise<RedisServer> {
  return startServer(
    (port, dir) => ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extra],
    'Ready to accept connections',
    (port) => `redis://127.0.0.1:${port}`,
  )
}

// A Redis Sentinel on a free port watching the master on `masterPort` as `name` (quorum 1,
// down after 1 s); its `url` is the `--redis` form redis+sentinel://127.0.0.1:PORT/NAME.
export function startRedisSentinel(masterPort: number, name = 'mymaster'): Promise<RedisServer> {
  return startServer(
    (port, dir) => {
      const conf = join(dir, 'sentinel.conf')
      writeFileSync(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor ${name} 127.0.0.1 ${masterPort} 1`,
          `sentinel down-after-milliseconds ${name} 1000`,
          `sentinel failover-timeout ${name} 5000`,
          '',
        ].join('\n'),
      )
      return [conf, '--sentinel']
    },
    `+monitor master ${name}`,
    (port) => `redis+sentinel://127.0.0.1:${port}/${name}`,
  )
}

export interface RedisCluster {
  readonly ports: number[]
  // The `--redis` form: redis+cluster://127.0.0.1:P1,127.0.0.1:P2,…
  readonly url: string
  readonly nodes: RedisServer[]
  stop(): Promise<void>
}

// A Redis Cluster of `masters` masters with `replicas` replicas each on free ports (client and
// bus ports; a node is failed after 2 s), created with `redis-cli --cluster create`, resolved
// once every node says cluster_state:ok.
export async function startRedisCluster(masters = 3, replicas = 0): Promise<RedisCluster> {
  const nodes: RedisServer[] = []
  try {
    for (let i = 0; i < masters * (1 + replicas); i++) {
      const busPort = await freePort()
      nodes.push(
        await startRedis([
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          `nodes.conf`,
          '--cluster-port',
          String(busPort),
          '--cluster-node-timeout',
          '2000',
          '--repl-diskless-sync-delay',
          '0',
        ]),
      )
    }
    const create = Bun.spawn(
      ['redis-cli', '--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', String(replicas), '--cluster-yes'],
      {
        stdin: 'ignore',
        stdout: 'pipe',
        stderr: 'pipe',
      },
    )
    const [out, err, code] = await Promise.all([new Response(create.stdout).text(), new Response(create.stderr).text(), create.exited])
    if (code !== 0) throw new Error(`redis-cli --cluster create failed (${code}):\n${out}${err}`)
    await untilClusterOk(nodes.map((n) => n.port))
  } catch (err) {
    await Promise.all(nodes.map((n) => n.stop()))
    throw err
  }
  const ports = nodes.map((n) => n.port)
  return {
    ports,
    url: `redis+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`,
    nodes,
    stop: async () => {
      await Promise.all(nodes.map((n) => n.stop()))
    },
  }
}

// Polls CLUSTER INFO on every node until all say cluster_state:ok (the nodes agree on the slot
// map only once gossip has spread the configuration); bounded.
export async function untilClusterOk(ports: number[]): Promise<void> {
  const clients = ports.map((port) => new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0 }))
  const deadline = Date.now() + CLUSTER_TIMEOUT_MS
  try {
    for (;;) {
      const infos = await Promise.all(clients.map((c) => c.cluster('INFO').catch((e: Error) => e.message)))
      if (infos.every((i) => String(i).includes('cluster_state:ok'))) return
      if (Date.now() > deadline) throw new Error(`the cluster is not ok after ${CLUSTER_TIMEOUT_MS} ms:\n${infos.join('\n')}`)
      await Bun.sleep(50)
    }
  } finally {
    for (const c of clients) c.disconnect()
  }
}
