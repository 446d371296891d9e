// `gateway` — serve, `gateway check DIR|FILE`, `gateway routes DIR|FILE`, `directives`, `version`, `help`.
import { buildProgram } from '../compile/build-program.ts'
import { AccessLog, stdoutWriter } from '../log/access-log.ts'
import { configureEvents, event } from '../log/events.ts'
import { Metrics } from '../metrics/metrics.ts'
import { PolicyDirError } from '../policy/load.ts'
import { renderDiagnostics, sortDiagnostics, type Diagnostic } from '../policy/diagnostics.ts'
import type { Span } from '../policy/source.ts'
import { ipMatcher } from '../runtime/ip.ts'
import { createObserver } from '../runtime/observe.ts'
import { startAdmin } from '../server/admin.ts'
import { Gateway } from '../server/gateway.ts'
import { reportToPrimary, WORKER_ENV, WorkerPool } from '../server/workers.ts'
import { memoryStore } from '../store/memory.ts'
import { SinkManager } from '../log/sinks/manager.ts'
import { registerSinkMetrics } from '../log/sinks/metrics.ts'
import { HELP, parseCommandLine, UsageError, type GatewayOptions, type Invocation } from './args.ts'
import { describeTracing } from '../trace/options.ts'
import { compactRoutes, jsonRoutes, wideRoutes } from './routes-table.ts'
import { directiveTable } from './directive-table.ts'
import { statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import pkg from '../../package.json'

function fail(message: string, code: number): never {
  process.stderr.write(`${message}\n`)
  process.exit(code)
}

// At shutdown, queued spans get this long to reach the collector.
const TRACE_FLUSH_MS = 2_000

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`

// `check --json`: one diagnostic, {file, line, col, severity, code, message, notes?}; a note has
// {file, line, col} only when it points somewhere. Every diagnostic is an error today.
function placeOf(span: Span | undefined) {
  if (!span) return { file: null, line: null, col: null }
  const { line, col } = span.file.position(span.offset)
  return { file: span.file.path, line, col }
}

function diagnosticEntry(d: Diagnostic) {
  const notes = d.notes.map((n) => (n.span ? { ...placeOf(n.span), message: n.message } : { message: n.message }))
  return { ...placeOf(d.span), severity: 'error', code: d.code, message: d.message, ...(notes.length ? { notes } : {}) }
}

// Output written before exiting: process.exit does not wait for a pipe to take it all.
async function exitAfter(text: string, stream: NodeJS.WriteStream, code: number): Promise<never> {
  await new Promise<void>((done) => stream.write(text, () => done()))
  process.exit(code)
}

async function check(opts: GatewayOptions): Promise<never> {
  const result = await buildProgram(opts.policies)
  if (opts.json && opts.command === 'check') {
    const report = result.diagnostics
      ? { ok: false, routes: null, diagnostics: sortDiagnostics(result.diagnostics).map(diagnosticEntry) }
      : { ok: true, routes: result.program.routes.length, diagnostics: [] }
    return exitAfter(`${JSON.stringify(report, null, 2)}\n`, process.stdout, result.diagnostics ? 1 : 0)
  }
  if (result.diagnostics) return exitAfter(renderDiagnostics(result.diagnostics), process.stderr, 1)
  const rows = result.program.routeTable()
  if (opts.command === 'check') return exitAfter(`${opts.policies}: ok, ${plural(rows.length, 'route')}\n`, process.stdout, 0)
  if (opts.json) return exitAfter(jsonRoutes(result.program.version, rows), process.stdout, 0)
  if (opts.wide) return exitAfter(wideRoutes(rows), process.stdout, 0)
  // Source positions are shown relative to the policy directory (a file's own directory).
  const base = resolve(statSync(opts.policies).isDirectory() ? opts.policies : dirname(opts.policies))
  return exitAfter(compactRoutes(rows, base), process.stdout, 0)
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
    // The primary is gone (killed, crashed): nothing supervises this worker any more, so it
    // stops too rather than serve the port on its own.
    process.on('disconnect', () => void stopWorker())
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

// Commands with flags of their own parse their arguments themselves and end by returning an
// exit code (the process then ends when its output is written).
const OWN_ARGUMENTS: Record<string, () => Promise<{ main(argv: string[]): Promise<number> }>> = {
  explain: () => import('./explain.ts'),
  openapi: () => import('./openapi.ts'),
  simulate: () => import('./simulate.ts'),
}

async function run(): Promise<void> {
  const own = OWN_ARGUMENTS[process.argv[2] ?? '']
  if (own) {
    try {
      process.exitCode = await (await own()).main(process.argv.slice(3))
    } catch (err) {
      fail(`portcullis: ${(err as Error).message}`, 2)
    }
    return
  }
  let invocation: Invocation
  try {
    invocation = parseCommandLine(process.argv.slice(2), process.env)
  } catch (err) {
    if (err instanceof UsageError) fail(err.message, 2)
    throw err
  }
  if (invocation.command === 'help') await exitAfter(`${HELP}\n`, process.stdout, 0)
  if (invocation.command === 'version') await exitAfter(`portcullis ${pkg.version}\n`, process.stdout, 0)
  const opts = invocation as GatewayOptions
  try {
    if (opts.command === 'serve') await serve(opts)
    else if (opts.command === 'directives') process.stdout.write(`${directiveTable()}\n`)
    else await check(opts)
  } catch (err) {
    if (err instanceof PolicyDirError) fail(err.message, 2)
    fail(`portcullis: ${(err as Error).message}`, 2)
  }
}

await run()
