// `upstream NAME { … }`: targets, balancing, timeout, retries and active health checks.
import type { ArgCursor } from '../policy/cursor.ts'
import type { Span } from '../policy/source.ts'
import type { HealthCheck, PassiveHealth, RetryPolicy } from '../runtime/upstream.ts'
import type { BlockKind } from './blocks.ts'

export interface UpstreamConfig {
  targets: { url: URL; weight: number; span: Span }[]
  timeoutMs?: number
  connectTimeoutMs?: number
  idleTimeoutMs?: number
  passive?: PassiveHealth | null // null: `passive-health off`
  balance: 'round-robin' | 'least-conn'
  retry?: RetryPolicy
  retryUnsafe: boolean
  health?: HealthCheck
}

const METHODS = ['GET', 'HEAD', 'OPTIONS'] as const

// `on connect-error, timeout, 502, 503`
function retryConditions(a: ArgCursor): RetryPolicy['on'] | undefined {
  const on: RetryPolicy['on'] = { connectError: false, timeout: false, statuses: [] }
  const items = a.list(() => {
    const arg = a.expect(['word', 'number'], 'a retry condition (connect-error, timeout or a 5xx status)')
    if (!arg) return undefined
    if (arg.kind === 'number') {
      const status = Number(arg.text)
      if (status < 500 || status > 599) return a.fail('bad-argument', `only 5xx statuses can be retried, found ${arg.text}`, arg.span)
      on.statuses.push(status)
    } else if (arg.text === 'connect-error') on.connectError = true
    else if (arg.text === 'timeout') on.timeout = true
    else return a.fail('bad-argument', `unknown retry condition '${arg.text}' (connect-error, timeout or a 5xx status)`, arg.span)
    return true
  })
  return items && on
}

export const upstreamBlock: BlockKind<UpstreamConfig> = {
  kind: 'upstream',
  init: () => ({ targets: [], balance: 'round-robin', retryUnsafe: false }),
  fields: [
    {
      name: 'target',
      usage: 'target http://host:port[/base] [weight N]',
      repeat: true,
      read(a, into) {
        const at = a.peek()?.span
        const url = a.url()
        if (!url) return
        const weight = a.accept('weight') ? a.integer('a weight', 1, 1000) : 1
        if (weight === undefined) return
        a.end()
        into.targets.push({ url, weight, span: at! })
      },
    },
    {
      name: 'timeout',
      usage: 'timeout DURATION',
      read(a, into) {
        into.timeoutMs = a.duration()
        a.end()
      },
    },
    {
      name: 'connect-timeout',
      usage: 'connect-timeout DURATION',
      read(a, into) {
        into.connectTimeoutMs = a.duration()
        a.end()
      },
    },
    {
      name: 'idle-timeout',
      usage: 'idle-timeout DURATION',
      read(a, into) {
        into.idleTimeoutMs = a.duration()
        a.end()
      },
    },
    {
      name: 'passive-health',
      usage: 'passive-health fails N [cooldown DURATION] | off',
      read(a, into) {
        if (a.accept('off')) {
          into.passive = null
          return void a.end()
        }
        if (!a.accept('fails')) return void a.fail('missing-argument', "'passive-health' expects 'fails N [cooldown DURATION]' or 'off'")
        const fails = a.integer("'fails'", 1, 1000)
        if (fails === undefined) return
        let cooldownMs = 10_000
        if (a.accept('cooldown')) {
          const ms = a.duration()
          if (ms === undefined) return
          cooldownMs = ms
        }
        a.end()
        into.passive = { fails, cooldownMs }
      },
    },
    {
      name: 'balance',
      usage: 'balance round-robin | least-conn',
      read(a, into) {
        const how = a.oneOf(['round-robin', 'least-conn'] as const, 'a balancing method')
        if (how) into.balance = how
        a.end()
      },
    },
    {
      name: 'retry',
      usage: 'retry N [on connect-error, timeout, 502, 503] [within DURATION] [retry-unsafe]',
      read(a, into) {
        const count = a.integer('a number of retries', 1, 10)
        if (count === undefined) return
        const on = a.accept('on') ? retryConditions(a) : { connectError: true, timeout: false, statuses: [] }
        if (!on) return
        const retry: RetryPolicy = { count, on }
        if (a.accept('within')) {
          const ms = a.duration()
          if (ms === undefined) return
          retry.withinMs = ms
        }
        if (a.accept('retry-unsafe')) into.retryUnsafe = true
        a.end()
        into.retry = retry
      },
    },
    {
      name: 'retry-unsafe',
      usage: 'retry-unsafe',
      read(a, into) {
        into.retryUnsafe = true
        a.end()
      },
    },
    {
      name: 'health',
      usage: 'health GET|HEAD|OPTIONS /path every DURATION [timeout DURATION] [fails N] [passes N]',
      read(a, into) {
        const method = a.oneOf(METHODS, 'a method for the check')
        const path = method && a.expect(['path'], 'the path to check, like /healthz')
        if (!path) return
        if (path.text.includes('{')) return void a.fail('bad-argument', 'a health check path is literal: it cannot hold {captures}', path.span)
        if (!a.accept('every')) return void a.fail('missing-argument', "'health' expects 'every DURATION'")
        const everyMs = a.duration()
        if (everyMs === undefined) return
        const check: HealthCheck = { method, path: path.text, everyMs, timeoutMs: Math.min(everyMs, 5000), fails: 2, passes: 1 }
        for (let w = a.peek(); w?.kind === 'word'; w = a.peek()) {
          const opt = a.oneOf(['timeout', 'fails', 'passes'] as const, 'timeout, fails or passes')
          if (!opt) return
          const v = opt === 'timeout' ? a.duration() : a.integer(`'${opt}'`, 1, 100)
          if (v === undefined) return
          if (opt === 'timeout') check.timeoutMs = v
          else check[opt] = v
        }
        a.end()
        into.health = check
      },
    },
  ],
}
