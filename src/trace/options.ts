// Tracing settings: where spans go (OTLP/HTTP) and which requests are sampled, from the flags
// and the OpenTelemetry SDK environment variables. Any bad value is one clear message.
import { z } from 'zod'

export const SAMPLERS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const
export type SamplerName = (typeof SAMPLERS)[number]
export type OtlpProtocol = 'http/protobuf' | 'http/json'

export interface TracingSettings {
  url: string // where the exporter POSTs (…/v1/traces)
  protocol: OtlpProtocol
  sampler: SamplerName
  ratio: number // of the traceidratio samplers
  // The batch span processor (OTEL_BSP_*): queue bound, batch size, delay, export deadline.
  maxQueueSize: number
  maxExportBatchSize: number
  scheduledDelayMs: number
  exportTimeoutMs: number
}

const TRACES_PATH = '/v1/traces'

const httpUrl = (what: string) =>
  z.string().refine(
    (s) => {
      try {
        const u = new URL(s)
        return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== ''
      } catch {
        return false
      }
    },
    { message: `${what} must be an http:// or https:// URL` },
  )

// `--otlp-endpoint URL` (OTEL_EXPORTER_OTLP_ENDPOINT): the collector's base URL.
export const otlpEndpoint = httpUrl('--otlp-endpoint (OTEL_EXPORTER_OTLP_ENDPOINT)')

// `--trace-sample RATIO` (OTEL_TRACES_SAMPLER_ARG): the share of new traces recorded.
export const traceRatio = z
  .string()
  .regex(/^(0(\.\d+)?|1(\.0+)?|\.\d+)$/, '--trace-sample (OTEL_TRACES_SAMPLER_ARG) must be a ratio from 0 to 1, such as 0.01')
  .transform(Number)

const whole = (name: string, min: number) =>
  z
    .string()
    .regex(/^\d+$/, `${name} must be a whole number`)
    .transform(Number)
    .refine((n) => n >= min, `${name} must be at least ${min}`)

const TraceEnv = z.object({
  OTEL_SDK_DISABLED: z.string().optional(),
  OTEL_TRACES_EXPORTER: z.enum(['otlp', 'none'], { message: 'OTEL_TRACES_EXPORTER must be otlp or none' }).optional(),
  OTEL_TRACES_SAMPLER: z.enum(SAMPLERS, { message: `OTEL_TRACES_SAMPLER must be one of ${SAMPLERS.join(', ')}` }).optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: httpUrl('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT').optional(),
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: z.string().optional(),
  OTEL_EXPORTER_OTLP_PROTOCOL: z.string().optional(),
  OTEL_BSP_MAX_QUEUE_SIZE: whole('OTEL_BSP_MAX_QUEUE_SIZE', 1).default(2048),
  OTEL_BSP_MAX_EXPORT_BATCH_SIZE: whole('OTEL_BSP_MAX_EXPORT_BATCH_SIZE', 1).default(512),
  OTEL_BSP_SCHEDULE_DELAY: whole('OTEL_BSP_SCHEDULE_DELAY', 0).default(5000),
  OTEL_BSP_EXPORT_TIMEOUT: whole('OTEL_BSP_EXPORT_TIMEOUT', 1).default(30000),
})

// The base URL with /v1/traces added, unless it already ends so.
export function tracesUrl(base: string): string {
  const trimmed = base.replace(/\/+$/, '')
  return trimmed.endsWith(TRACES_PATH) ? trimmed : `${trimmed}${TRACES_PATH}`
}

export interface TracingFlags {
  endpoint?: string // --otlp-endpoint, or OTEL_EXPORTER_OTLP_ENDPOINT
  endpointFlag: boolean // it came from the flag
  ratio?: number // --trace-sample, or OTEL_TRACES_SAMPLER_ARG
  ratioFlag: boolean
}

// Null: tracing is off (no endpoint, OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none).
// Throws an Error whose message is the one line to print.
export function tracingSettings(flags: TracingFlags, env: Record<string, string | undefined>): TracingSettings | null {
  // Without an endpoint the other variables are not read: they may be set for other programs.
  if (flags.endpoint === undefined && !env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) {
    if (flags.ratioFlag) throw new Error('--trace-sample needs an OTLP endpoint (--otlp-endpoint or OTEL_EXPORTER_OTLP_ENDPOINT)')
    return null
  }
  const raw: Record<string, string | undefined> = {}
  for (const key of Object.keys(TraceEnv.shape)) raw[key] = env[key] || undefined
  const parsed = TraceEnv.safeParse(raw)
  if (!parsed.success) throw new Error(parsed.error.issues[0]!.message)
  const e = parsed.data
  // The signal's own variable wins over the generic one and is used as given (the spec's rule);
  // the flag wins over both.
  const url = flags.endpointFlag
    ? tracesUrl(flags.endpoint!)
    : (e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? (flags.endpoint === undefined ? undefined : tracesUrl(flags.endpoint)))
  if (url === undefined || e.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true' || e.OTEL_TRACES_EXPORTER === 'none') return null
  const protocol = e.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? e.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf'
  if (protocol !== 'http/protobuf' && protocol !== 'http/json') {
    throw new Error(`OTEL_EXPORTER_OTLP_PROTOCOL: '${protocol}' is not supported (http/protobuf or http/json; no grpc)`)
  }
  // A ratio alone means the ratio sampler, under the caller's decision when it made one.
  const sampler = e.OTEL_TRACES_SAMPLER ?? (flags.ratio === undefined ? 'parentbased_always_on' : 'parentbased_traceidratio')
  if (flags.ratioFlag && !sampler.endsWith('traceidratio')) {
    throw new Error(`--trace-sample needs a ratio sampler; OTEL_TRACES_SAMPLER is ${sampler}`)
  }
  if (e.OTEL_BSP_MAX_EXPORT_BATCH_SIZE > e.OTEL_BSP_MAX_QUEUE_SIZE) {
    throw new Error('OTEL_BSP_MAX_EXPORT_BATCH_SIZE must not be larger than OTEL_BSP_MAX_QUEUE_SIZE')
  }
  return {
    url,
    protocol,
    sampler,
    ratio: flags.ratio ?? 1,
    maxQueueSize: e.OTEL_BSP_MAX_QUEUE_SIZE,
    maxExportBatchSize: e.OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
    scheduledDelayMs: e.OTEL_BSP_SCHEDULE_DELAY,
    exportTimeoutMs: e.OTEL_BSP_EXPORT_TIMEOUT,
  }
}

export function describeTracing(s: TracingSettings): string {
  const ratio = s.sampler.endsWith('traceidratio') ? ` ${s.ratio}` : ''
  return `tracing: OTLP ${s.protocol} to ${s.url}, sampler ${s.sampler}${ratio}`
}
