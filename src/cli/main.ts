// `gateway` — serve, `gateway check DIR`, `gateway routes DIR`.
import { buildProgram } from '../compile/build-program.ts'
import { AccessLog, stdoutWriter } from '../log/access-log.ts'
import { configureEvents, event } from '../log/events.ts'
import { Metrics } from '../metrics/metrics.ts'
import { PolicyDirError } from '../policy/load.ts'
import { renderDiagnostics } from '../policy/diagnostics.ts'
import { ipMatcher } from '../runtime/ip.ts'
import { createObserver } from '../runtime/observe.ts'
import { startAdmin } from '../server/admin.ts'
import { Gateway } from '../server/gateway.ts'
import { reportToPrimary, WORKER_ENV, WorkerPool } from '../server/workers.ts'
import { memoryStore } from '../store/memory.ts'
import { SinkManager } from '../log/sinks/manager.ts'
import { registerSinkMetrics } from '../log/sinks/metrics.ts'
import { parseOptions, UsageError, type GatewayOptions } from './args.ts'
import { describeTracing } from '../trace/options.ts'
import { printRoutes } from './routes-table.ts'
import { directiveTable } from './directive-table.ts'

function fail(message: string, code: number): never {
  process.stderr.write(`${message}\n`)
  process.exit(code)
}

// At shutdown, queued spans get this long to reach the collector.
const TRACE_FLUSH_MS = 2_000

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`

async function check(opts: GatewayOptions): Promise<never> {
  const result = await buildProgram(opts.policies)
  if (result.diagnostics) fail(renderDiagnostics(result.diagnostics).trimEnd(), 1)
  if (opts.command === 'routes') process.stdout.write(printRoutes(result.program.routeTable()))
  else process.stdout.write(`${opts.policies}: ok, ${plural(result.program.routes.length, 'route')}\n`)
  process.exit(0)
}

async function serve(opts: GatewayOptions): Promise<void> {
  const isWorker = process.env[WORKER_ENV] === '1'
  const primary = opts.workers > 1 && !isWorker
  if (primary && opts.port === 0) fail('--workers above 1 needs a fixed --port (the workers share it)', 2)
  const metrics = new Metrics()
  const format = opts['log-format'] ?? (process.stdout.isTTY ? 'pretty' : 'json')
  configureEvents(format)
  const log = new AccessLog(stdoutWriter(), format)
  // Tracing is loaded only when it is on; the --workers primary serves no traffic to trace.
  const tracing = opts.tracing && !primary ? (await import('../trace/tracing.ts')).startTracing(opts.tracing, metrics) : null
  const observer = tracing ? tracing.observe(createObserver(log, metrics)) : createObserver(log, metrics)
  const trustProxy = opts['trust-proxy'].length ? ipMatcher(opts['trust-proxy']) : null
  // ioredis is loaded only when it is used: 2 MB of heap every full GC would walk otherwise.
  const store = opts.redis ? (await import('../store/redis.ts')).redisStore(opts.redis, { prefix: opts['redis-prefix'] }) : memoryStore()
  // The primary of --workers serves no traffic: its program is for the admin API, so no health checks.
  const perWorkerStore = opts.workers > 1 && !opts.redis
  // Sinks outlive programs; the --workers primary logs nothing, so its sinks stay idle.
  const sinks = new SinkManager({ spoolDir: opts.spool, redisUrl: opts.redis ?? null, live: !primary })
  registerSinkMetrics(metrics, sinks)
  const first = await buildProgram(opts.policies, { trustProxy, observer, healthChecks: !primary, store, perWorkerStore, sinks })
  if (first.diagnostics) fail(renderDiagnostics(first.diagnostics).trimEnd(), 1)
  const pool = primary ? new WorkerPool(opts.workers, process.argv.slice(1)) : null
  const gw = new Gateway(
    {
      policies: opts.policies,
      host: opts.host,
      port: opts.port,
      tls:
        opts['tls-cert'] && opts['tls-key']
          ? { cert: opts['tls-cert'], key: opts['tls-key'], port: opts['tls-port'], clientCa: opts['client-ca'] }
          : undefined,
      trustProxy,
      watch: opts.watch,
      reusePort: opts.workers > 1,
      idleTimeout: opts['idle-timeout'],
      healthChecks: !primary,
      perWorkerStore,
      observer,
      log,
      metrics,
      store,
      sinks,
      afterReload: pool ? () => pool.signal('SIGHUP') : undefined,
      workerMetrics: pool ? (into) => pool.addMetrics(into) : undefined,
      workerSinks: pool ? () => pool.sinkStatuses() : undefined,
    },
    first.program,
  )
  if (!primary) {
    try {
      gw.listen()
    } catch (err) {
      fail(`cannot start serving: ${(err as Error).message.split('\n')[0]}`, 2)
    }
  }
  process.on('SIGHUP', () => void gw.reload('SIGHUP'))
  process.on('SIGUSR1', () => sinks.reopen())
  if (isWorker) {
    const stopWorker = async () => {
      await gw.stop()
      await tracing?.shutdown(TRACE_FLUSH_MS)
      process.exit(0)
    }
    process.on('SIGTERM', () => void stopWorker())
    process.on('SIGINT', () => void stopWorker())
    reportToPrimary(gw.urls, metrics, sinks)
    return
  }
  let admin
  try {
    admin = startAdmin(gw, opts['admin-port'], opts['admin-token'])
  } catch (err) {
    await gw.stop()
    fail(`cannot listen on 127.0.0.1:${opts['admin-port']} for the admin API: ${(err as Error).message}`, 2)
  }
  gw.watchPolicies()
  const shutdown = async (signal: NodeJS.Signals) => {
    event('stop', `${signal}: finishing in-flight requests`, { signal })
    admin.stop(true)
    await Promise.all([gw.stop(), pool?.stop(signal)])
    await tracing?.shutdown(TRACE_FLUSH_MS)
    process.exit(0)
  }
  process.on('SIGTERM', () => void shutdown('SIGTERM'))
  process.on('SIGINT', () => void shutdown('SIGINT'))
  event('start', `admin API on ${admin.url.href.replace(/\/$/, '')}`, { admin: admin.url.href.replace(/\/$/, '') })
  event(
    'start',
    `${plural(first.program.routes.length, 'route')} from ${opts.policies} (version ${first.program.version}), store: ${store.kind}${pool ? `, ${opts.workers} workers` : ''}`,
    { routes: first.program.routes.length, policies: opts.policies, version: first.program.version, store: store.kind, workers: opts.workers },
  )
  if (opts.tracing) event('start', describeTracing(opts.tracing), { tracing: opts.tracing.url })
  let urls = gw.urls
  if (pool) {
    try {
      urls = await pool.start()
    } catch (err) {
      await pool.stop('SIGTERM')
      fail(`cannot start the workers: ${(err as Error).message}`, 2)
    }
  }
  for (const url of urls) process.stdout.write(`portcullis listening on ${url}\n`)
}

let opts: GatewayOptions
try {
  opts = parseOptions(process.argv.slice(2), process.env)
} catch (err) {
  if (err instanceof UsageError && err.message.startsWith('usage:')) {
    process.stdout.write(`${err.message}\n`)
    process.exit(0)
  }
  if (err instanceof UsageError) fail(err.message, 2)
  throw err
}
try {
  if (opts.command === 'serve') await serve(opts)
  else if (opts.command === 'directives') process.stdout.write(`${directiveTable()}\n`)
  else await check(opts)
} catch (err) {
  if (err instanceof PolicyDirError) fail(err.message, 2)
  fail(`portcullis: ${(err as Error).message}`, 2)
}
