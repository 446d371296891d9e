// Flags, then environment variables, validated by zod. Any problem is one line and exit 2.
import { parseArgs } from 'node:util'
import { existsSync, statSync } from 'node:fs'
import { z } from 'zod'
import { parseCidr, type Cidr } from '../runtime/ip.ts'
import { parseRedisUrl } from '../store/redis-url.ts'
import { DEFAULT_SPOOL_DIR } from '../log/sinks/spec.ts'
import { otlpEndpoint, traceRatio, tracingSettings, type TracingSettings } from '../trace/options.ts'

export class UsageError extends Error {}

const flagSpec = {
  policies: { type: 'string' },
  port: { type: 'string' },
  host: { type: 'string' },
  workers: { type: 'string' },
  redis: { type: 'string' },
  'redis-prefix': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-port': { type: 'string' },
  'client-ca': { type: 'string' },
  'trust-proxy': { type: 'string' },
  'admin-port': { type: 'string' },
  'admin-token': { type: 'string' },
  watch: { type: 'boolean' },
  'no-watch': { type: 'boolean' },
  'log-format': { type: 'string' },
  'idle-timeout': { type: 'string' },
  spool: { type: 'string' },
  'otlp-endpoint': { type: 'string' },
  'trace-sample': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
  // Output forms of `check` and `routes`.
  json: { type: 'boolean' },
  wide: { type: 'boolean' },
} as const

const envOf: Record<string, string> = {
  policies: 'GATEWAY_POLICIES',
  port: 'GATEWAY_PORT',
  host: 'GATEWAY_HOST',
  workers: 'GATEWAY_WORKERS',
  redis: 'REDIS_URL',
  'redis-prefix': 'GATEWAY_REDIS_PREFIX',
  'tls-cert': 'GATEWAY_TLS_CERT',
  'tls-key': 'GATEWAY_TLS_KEY',
  'tls-port': 'GATEWAY_TLS_PORT',
  'client-ca': 'GATEWAY_CLIENT_CA',
  'trust-proxy': 'GATEWAY_TRUST_PROXY',
  'admin-port': 'GATEWAY_ADMIN_PORT',
  'admin-token': 'GATEWAY_ADMIN_TOKEN',
  watch: 'GATEWAY_WATCH',
  'log-format': 'GATEWAY_LOG_FORMAT',
  'idle-timeout': 'GATEWAY_IDLE_TIMEOUT',
  spool: 'GATEWAY_SPOOL',
  // Tracing takes the OpenTelemetry SDK's variables (the rest are read in src/trace/options.ts).
  'otlp-endpoint': 'OTEL_EXPORTER_OTLP_ENDPOINT',
  'trace-sample': 'OTEL_TRACES_SAMPLER_ARG',
}

const port = (name: string) =>
  z
    .string()
    .regex(/^\d+$/, `${name} must be a port number`)
    .transform(Number)
    .refine((n) => n <= 65535, `${name} must be at most 65535`)
const readable = (name: string) => z.string().refine((p) => existsSync(p), { message: `${name}: cannot read that file` })

const Options = z
  .object({
    policies: z.string().min(1).default('./policies'),
    port: port('--port').default(8080),
    host: z.string().min(1).default('0.0.0.0'),
    workers: z
      .union([z.literal('auto'), z.string().regex(/^[1-9]\d{0,2}$/, '--workers must be a positive number or auto')])
      .default('1')
      .transform((w) => (w === 'auto' ? navigator.hardwareConcurrency : Number(w))),
    // One Redis, a Cluster or a Sentinel master: the forms are in src/store/redis-url.ts.
    redis: z
      .string()
      .superRefine((url, ctx) => {
        const target = parseRedisUrl(url)
        if (typeof target === 'string') ctx.addIssue({ code: 'custom', message: target })
      })
      .optional(),
    // Gateways sharing one Redis for different purposes keep their keys apart.
    'redis-prefix': z.string().min(1).max(200).default('portcullis:'),
    'tls-cert': readable('--tls-cert').optional(),
    'tls-key': readable('--tls-key').optional(),
    'tls-port': port('--tls-port').default(8443),
    'client-ca': readable('--client-ca').optional(),
    'trust-proxy': z
      .string()
      .optional()
      .transform((s, ctx): Cidr[] => {
        if (!s) return []
        return s.split(',').map((part) => {
          const c = parseCidr(part.trim())
          if (!c) ctx.addIssue({ code: 'custom', message: `--trust-proxy: '${part.trim()}' is not an IP address or CIDR range` })
          return c!
        })
      }),
    'admin-port': port('--admin-port').default(9080),
    'admin-token': z.string().min(16, '--admin-token must be at least 16 characters').optional(),
    watch: z
      .enum(['true', 'false', '1', '0'])
      .default('true')
      .transform((w) => w === 'true' || w === '1'),
    'log-format': z.enum(['json', 'pretty'], { message: '--log-format must be json or pretty' }).optional(),
    // Seconds a client connection may sit idle between requests (Bun's limit is 255).
    'idle-timeout': z
      .string()
      .regex(/^\d+$/, '--idle-timeout must be a whole number of seconds')
      .transform(Number)
      .refine((n) => n >= 1 && n <= 255, '--idle-timeout must be from 1 to 255 seconds')
      .default(120),
    // Where sinks keep undelivered entries (one directory per sink), across restarts.
    spool: z
      .string()
      .min(1, '--spool must name a directory')
      .refine((p) => !existsSync(p) || statSync(p).isDirectory(), { message: '--spool: that path is not a directory' })
      .default(DEFAULT_SPOOL_DIR),
    // Tracing: OTLP/HTTP export to a collector, and the share of new traces recorded.
    'otlp-endpoint': otlpEndpoint.optional(),
    'trace-sample': traceRatio.optional(),
  })
  .refine((o) => Boolean(o['tls-cert']) === Boolean(o['tls-key']), { message: '--tls-cert and --tls-key go together' })
  // Braces in the prefix would be every key's hash tag: the whole gateway in one Cluster slot.
  .refine((o) => !o.redis?.startsWith('redis+cluster:') || !/[{}]/.test(o['redis-prefix']), {
    message: '--redis-prefix must not contain { or } with a Redis Cluster',
  })

export type GatewayOptions = z.output<typeof Options> & {
  command: 'serve' | 'check' | 'routes' | 'directives'
  tracing: TracingSettings | null // null: tracing off
  // check and routes: JSON on stdout; routes: every directive of every stage.
  json: boolean
  wide: boolean
}

// What the command line asks for: help and the version need no options.
export type Invocation = { command: 'help' } | { command: 'version' } | GatewayOptions

// Every command and flag, one line each (`gateway help`, `--help`, `-h`).
export const HELP = `usage: gateway [COMMAND] [ARGUMENTS] [OPTIONS]

commands:
  serve                       serve the policies (the default: no command serves)
  check DIR|FILE              parse and check; file:line:col diagnostics, exit 1 on errors
  routes DIR|FILE             the compiled route table, 100 columns wide
  directives                  the table of every directive (Markdown)
  explain DIR "METHOD /path"  offline: the route a request takes and each directive's decision
  openapi DIR                 an OpenAPI 3.1 document of the exposed routes
  simulate DIR TRACE          replay a recorded traffic trace: what is admitted, throttled, refused
  version                     print the version (also --version)
  help                        this text (also --help, -h)

check and routes:
  --json                      JSON: check {ok, routes, diagnostics}; routes as the admin GET /routes
  --wide                      routes: every directive of every stage and the full source position

serve (flag, then environment variable):
  --policies DIR              GATEWAY_POLICIES      the *.policy files (default ./policies)
  --port N                    GATEWAY_PORT          HTTP port (default 8080)
  --host ADDR                 GATEWAY_HOST          address to listen on (default 0.0.0.0)
  --workers N|auto            GATEWAY_WORKERS       processes sharing the port (default 1)
  --redis URL                 REDIS_URL             the shared store (default: in memory)
  --redis-prefix P            GATEWAY_REDIS_PREFIX  of every Redis key (default portcullis:)
  --tls-cert F                GATEWAY_TLS_CERT      certificate (PEM) to serve HTTPS too
  --tls-key F                 GATEWAY_TLS_KEY       its private key (PEM)
  --tls-port N                GATEWAY_TLS_PORT      HTTPS port (default 8443)
  --client-ca F               GATEWAY_CLIENT_CA     CA bundle for client certificates (mTLS)
  --trust-proxy CIDR,...      GATEWAY_TRUST_PROXY   proxies whose X-Forwarded-* are believed
  --admin-port N              GATEWAY_ADMIN_PORT    admin API on 127.0.0.1 (default 9080)
  --admin-token T             GATEWAY_ADMIN_TOKEN   bearer token for admin changes (16+ chars)
  --watch | --no-watch        GATEWAY_WATCH         reload when policies change (default on)
  --log-format json|pretty    GATEWAY_LOG_FORMAT    logs and events (default json unless a TTY)
  --idle-timeout SECONDS      GATEWAY_IDLE_TIMEOUT  idle client connections (default 120, max 255)
  --spool DIR                 GATEWAY_SPOOL         sinks' undelivered entries (${DEFAULT_SPOOL_DIR})
  --otlp-endpoint URL         OTEL_EXPORTER_OTLP_ENDPOINT  trace export (docs/tracing.md)
  --trace-sample RATIO        OTEL_TRACES_SAMPLER_ARG      share of new traces recorded`

const COMMANDS = ['serve', 'check', 'routes', 'directives', 'version', 'help'] as const

// The options of a command that has them (tests call this with serve's flags).
export function parseOptions(argv: string[], env: Record<string, string | undefined>): GatewayOptions {
  const invocation = parseCommandLine(argv, env)
  if (invocation.command === 'help' || invocation.command === 'version') throw new UsageError(`gateway ${invocation.command} takes no options`)
  return invocation
}

export function parseCommandLine(argv: string[], env: Record<string, string | undefined>): Invocation {
  let parsed
  try {
    parsed = parseArgs({ args: argv, options: flagSpec, allowPositionals: true, strict: true })
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/\. To specify.*$/s, '').split('\n')[0])
  }
  const { values, positionals } = parsed
  const [name = 'serve', dir, extra] = positionals
  if (!(COMMANDS as readonly string[]).includes(name)) throw new UsageError(`unknown command '${name}' (gateway help lists the commands and flags)`)
  // --help and --version win over anything else on the line, as with most tools.
  if (values.help) return { command: 'help' }
  if ((name === 'help' || name === 'version') && dir !== undefined) throw new UsageError(`unexpected argument '${dir}'`)
  if (name === 'help') return { command: 'help' }
  if (values.version || name === 'version') return { command: 'version' }
  const command = name as GatewayOptions['command']
  const takesPath = command === 'check' || command === 'routes'
  if (extra !== undefined || (!takesPath && dir !== undefined)) throw new UsageError(`unexpected argument '${extra ?? dir}'`)
  if (values.json && !takesPath) throw new UsageError('--json goes with gateway check and gateway routes only')
  if (values.wide && command !== 'routes') throw new UsageError('--wide goes with gateway routes only')
  if (values.wide && values.json) throw new UsageError('--wide and --json do not go together (the JSON has every directive)')
  const raw: Record<string, string | undefined> = {}
  for (const [flag, name] of Object.entries(envOf)) raw[flag] = env[name] || undefined
  for (const [flag, v] of Object.entries(values)) if (typeof v === 'string') raw[flag] = v
  if (values.watch) raw.watch = 'true'
  if (values['no-watch']) raw.watch = 'false'
  if (dir !== undefined) raw.policies = dir
  // check and routes take a single .policy file too; the gateway serves a directory (it watches it).
  if (command === 'serve' && raw.policies && existsSync(raw.policies) && !statSync(raw.policies).isDirectory()) {
    throw new UsageError(`--policies: ${raw.policies} is not a directory (gateway check and gateway routes take a single file)`)
  }
  const result = Options.safeParse(raw)
  if (!result.success) {
    const issue = result.error.issues[0]!
    const field = issue.path[0]
    const msg = issue.message
    throw new UsageError(field && !msg.includes('--') ? `--${String(field)}: ${msg}` : msg)
  }
  let tracing: TracingSettings | null
  try {
    const { 'otlp-endpoint': endpoint, 'trace-sample': ratio } = result.data
    tracing = tracingSettings(
      { endpoint, endpointFlag: values['otlp-endpoint'] !== undefined, ratio, ratioFlag: values['trace-sample'] !== undefined },
      env,
    )
  } catch (e) {
    throw new UsageError((e as Error).message)
  }
  return { ...result.data, command, tracing, json: values.json === true, wide: values.wide === true }
}
