// Tracing settings from flags and the OpenTelemetry variables: precedence, defaults, and one
// clear line (exit 2) for every bad value.
import { describe, expect, test } from 'bun:test'
import { parseOptions, UsageError } from '../../src/cli/args.ts'
import { runCli } from '../helpers/gateway.ts'

const tracing = (argv: string[], env: Record<string, string> = {}) => parseOptions(argv, env).tracing
const failure = (argv: string[], env: Record<string, string> = {}) => {
  try {
    parseOptions(argv, env)
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError)
    return (e as Error).message
  }
  throw new Error('no error')
}

describe('on or off', () => {
  test('off without an endpoint, whatever else is set (other programs may use those variables)', () => {
    expect(tracing([])).toBeNull()
    expect(tracing([], { OTEL_TRACES_SAMPLER: 'always_on', OTEL_TRACES_SAMPLER_ARG: '0.5' })).toBeNull()
    expect(tracing([], { OTEL_TRACES_SAMPLER: 'jaeger_remote', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc', OTEL_TRACES_EXPORTER: 'zipkin' })).toBeNull()
  })

  test('off with OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none', () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }
    expect(tracing([], { ...env, OTEL_SDK_DISABLED: 'TRUE' })).toBeNull()
    expect(tracing([], { ...env, OTEL_TRACES_EXPORTER: 'none' })).toBeNull()
    expect(tracing([], { ...env, OTEL_SDK_DISABLED: 'false' })).not.toBeNull()
  })

  test('on with defaults: protobuf, parent-based always on, the SDK batch sizes', () => {
    expect(tracing([], { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toEqual({
      url: 'http://collector:4318/v1/traces',
      protocol: 'http/protobuf',
      sampler: 'parentbased_always_on',
      ratio: 1,
      maxQueueSize: 2048,
      maxExportBatchSize: 512,
      scheduledDelayMs: 5000,
      exportTimeoutMs: 30000,
    })
  })
})

describe('the endpoint', () => {
  test('/v1/traces is added to a base URL, once', () => {
    expect(tracing(['--otlp-endpoint', 'https://c.example/otlp/'])?.url).toBe('https://c.example/otlp/v1/traces')
    expect(tracing(['--otlp-endpoint', 'http://c:4318/v1/traces'])?.url).toBe('http://c:4318/v1/traces')
  })

  test('flag, then OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (as given), then OTEL_EXPORTER_OTLP_ENDPOINT', () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://generic:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:4318/custom' }
    expect(tracing(['--otlp-endpoint', 'http://flag:4318'], env)?.url).toBe('http://flag:4318/v1/traces')
    expect(tracing([], env)?.url).toBe('http://traces:4318/custom')
    expect(tracing([], { OTEL_EXPORTER_OTLP_ENDPOINT: env.OTEL_EXPORTER_OTLP_ENDPOINT })?.url).toBe('http://generic:4318/v1/traces')
  })

  test('only http(s) URLs', () => {
    expect(failure(['--otlp-endpoint', 'ftp://c'])).toBe('--otlp-endpoint (OTEL_EXPORTER_OTLP_ENDPOINT) must be an http:// or https:// URL')
    expect(failure([], { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).toContain('must be an http:// or https:// URL')
    expect(failure([], { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'nope' })).toBe('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT must be an http:// or https:// URL')
  })

  test('http/json is chosen by OTEL_EXPORTER_OTLP(_TRACES)_PROTOCOL; grpc is refused', () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }
    expect(tracing([], { ...env, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' })?.protocol).toBe('http/json')
    expect(tracing([], { ...env, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf' })?.protocol).toBe(
      'http/protobuf',
    )
    expect(failure([], { ...env, OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toContain("'grpc' is not supported")
  })
})

describe('sampling', () => {
  const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }

  test('a ratio alone means the parent-based ratio sampler', () => {
    expect(tracing(['--trace-sample', '0.01'], env)).toMatchObject({ sampler: 'parentbased_traceidratio', ratio: 0.01 })
    expect(tracing([], { ...env, OTEL_TRACES_SAMPLER_ARG: '0.25' })).toMatchObject({ sampler: 'parentbased_traceidratio', ratio: 0.25 })
    expect(tracing(['--trace-sample', '0.5'], { ...env, OTEL_TRACES_SAMPLER_ARG: '0.25' })?.ratio).toBe(0.5)
  })

  test('OTEL_TRACES_SAMPLER names the sampler', () => {
    expect(tracing(['--trace-sample', '0'], { ...env, OTEL_TRACES_SAMPLER: 'traceidratio' })).toMatchObject({ sampler: 'traceidratio', ratio: 0 })
    expect(tracing([], { ...env, OTEL_TRACES_SAMPLER: 'always_off' })?.sampler).toBe('always_off')
    // The argument of a sampler that takes none is ignored when it comes from the environment.
    expect(tracing([], { ...env, OTEL_TRACES_SAMPLER: 'always_on', OTEL_TRACES_SAMPLER_ARG: '0.5' })?.sampler).toBe('always_on')
  })

  test.each([['2'], ['-0.1'], ['half'], ['1.5'], ['']])('--trace-sample %p is refused', (ratio) => {
    expect(failure([`--trace-sample=${ratio}`], env)).toBe('--trace-sample (OTEL_TRACES_SAMPLER_ARG) must be a ratio from 0 to 1, such as 0.01')
  })

  test('conflicts and unknown names are refused', () => {
    expect(failure([], { ...env, OTEL_TRACES_SAMPLER: 'sometimes' })).toContain('OTEL_TRACES_SAMPLER must be one of always_on, always_off')
    expect(failure(['--trace-sample', '0.1'], { ...env, OTEL_TRACES_SAMPLER: 'always_on' })).toBe(
      '--trace-sample needs a ratio sampler; OTEL_TRACES_SAMPLER is always_on',
    )
    expect(failure(['--trace-sample', '0.1'])).toBe('--trace-sample needs an OTLP endpoint (--otlp-endpoint or OTEL_EXPORTER_OTLP_ENDPOINT)')
    expect(failure([], { ...env, OTEL_BSP_MAX_QUEUE_SIZE: 'lots' })).toBe('OTEL_BSP_MAX_QUEUE_SIZE must be a whole number')
    expect(failure([], { ...env, OTEL_BSP_MAX_QUEUE_SIZE: '10', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '20' })).toContain('must not be larger')
    expect(failure([], { ...env, OTEL_TRACES_EXPORTER: 'zipkin' })).toBe('OTEL_TRACES_EXPORTER must be otlp or none')
  })
})

test('a bad tracing value stops start-up with one line and exit code 2', async () => {
  const r = await runCli(['--policies', 'policies', '--port', '0'], {
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318',
    OTEL_TRACES_SAMPLER: 'sometimes',
  })
  expect(r.code).toBe(2)
  expect(r.stderr.trim().split('\n')).toHaveLength(1)
  expect(r.stderr).toContain('OTEL_TRACES_SAMPLER must be one of')
}, 15_000)
