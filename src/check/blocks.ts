// The fields of declaration blocks (upstream, app, sink, session) and tier lines.
// Each field reads its own arguments through the cursor, like a directive does.
import type { Arg, Statement } from '../policy/ast.ts'
import { ArgCursor, type SecretRef } from '../policy/cursor.ts'
import { didYouMean, type DiagnosticBag } from '../policy/diagnostics.ts'
import type { Rate } from '../policy/literals.ts'
import type { Span } from '../policy/source.ts'
import type { Cidr } from '../runtime/ip.ts'
import { upstreamBlock } from './upstream-block.ts'
import { SINK_DEFAULTS, type SinkSpec, type SinkTarget } from '../log/sinks/spec.ts'

export interface Field<C> {
  name: string
  usage: string
  repeat?: boolean
  read(a: ArgCursor, into: C): void
}

export interface BlockKind<C> {
  kind: string
  fields: Field<C>[]
  // Fields of the language reference this version cannot honour: name → why.
  unavailable?: Record<string, string>
  init(): C
}

// A secret or API key, with the window in which it is accepted (key rotation).
export interface RotatingSecret {
  ref: SecretRef
  from: number | null
  until: number | null
  span: Span // the whole line, for window diagnostics
}

export interface AppConfig {
  key?: string
  keySpan?: Span
  secrets: RotatingSecret[]
  apiKeys: RotatingSecret[]
  publicKey?: SecretRef
  certs: string[]
  jwtSubject?: string
  allowIp?: Cidr[]
  tier?: Arg
  group?: string
  meta: Record<string, string>
}

// `secret env NAME [from DATE] [until DATE]`: up to two per app, so a partner can move to a
// new secret (or API key) without a flag day; each is accepted only inside its window.
function rotatingField(name: string, key: 'secrets' | 'apiKeys'): Field<AppConfig> {
  return {
    name,
    usage: `${name} env NAME | file "path" [from DATE] [until DATE]`,
    repeat: true,
    read: (a, c) => {
      const ref = a.secret()
      if (!ref) return
      let from: number | null = null
      let until: number | null = null
      if (a.accept('from')) from = a.date() ?? null
      if (a.accept('until')) until = a.date() ?? null
      a.end()
      if (from !== null && until !== null && from >= until) return void a.fail('bad-window', `'from' must be before 'until'`, a.statement.span)
      if (c[key].length === 2)
        return void a.fail('too-many-secrets', `an app holds at most two ${name}s at once (the current one and the next)`, a.statement.span)
      c[key].push({ ref, from, until, span: a.statement.span })
    },
  }
}

export const appBlock: BlockKind<AppConfig> = {
  kind: 'app',
  init: () => ({ certs: [], meta: {}, secrets: [], apiKeys: [] }),
  fields: [
    {
      name: 'key',
      usage: 'key "public key id"',
      read: (a, c) => {
        const s = a.string()
        if (s) {
          c.key = s.value
          c.keySpan = s.arg.span
        }
        a.end()
      },
    },
    rotatingField('secret', 'secrets'),
    rotatingField('api-key', 'apiKeys'),
    {
      name: 'public-key',
      usage: 'public-key env NAME | file "path.pem"',
      read: (a, c) => {
        c.publicKey = a.secret()
        a.end()
      },
    },
    {
      name: 'cert',
      usage: 'cert sha256 "AA:BB:…"',
      repeat: true,
      read(a, c) {
        if (!a.oneOf(['sha256'] as const, 'a fingerprint algorithm')) return
        const s = a.string('a "fingerprint"')
        a.end()
        if (!s) return
        const hex = s.value.replace(/:/g, '').toLowerCase()
        if (!/^[0-9a-f]{64}$/.test(hex)) a.fail('bad-fingerprint', 'a SHA-256 fingerprint is 32 bytes of hex (with or without colons)', s.arg.span)
        else c.certs.push(hex)
      },
    },
    {
      name: 'jwt-subject',
      usage: 'jwt-subject "subject"',
      read: (a, c) => {
        c.jwtSubject = a.string()?.value
        a.end()
      },
    },
    {
      name: 'allow ip',
      usage: 'allow ip CIDR[, CIDR…]',
      read: (a, c) => {
        c.allowIp = a.list(() => a.cidr())
        a.end()
      },
    },
    {
      name: 'tier',
      usage: 'tier NAME',
      read: (a, c) => {
        c.tier = a.word('a tier name')
        a.end()
      },
    },
    {
      name: 'group',
      usage: 'group NAME',
      read: (a, c) => {
        c.group = a.word('a group name')?.text
        a.end()
      },
    },
    {
      name: 'meta',
      usage: 'meta KEY "value"',
      repeat: true,
      read(a, c) {
        const k = a.word('a meta key')
        const v = k && a.string()
        a.end()
        if (k && v) c.meta[k.text] = v.value
      },
    },
  ],
}

export interface SinkConfig {
  target?: SinkTarget
  targetSpan?: Span // the `redis`, `http` or `file` word, for diagnostics about the target
  batch?: number
  everyMs?: number
  queue?: number
  spoolBytes?: number
  backoff?: { minMs: number; maxMs: number }
}

// `word VALUE` options after a sink's target, in any order, each at most once.
type SinkOption = (a: ArgCursor, c: SinkConfig) => boolean
const batchOption: SinkOption = (a, c) => (c.batch = a.integer('a batch size', 1, 100_000)) !== undefined
const everyOption: SinkOption = (a, c) => (c.everyMs = a.duration()) !== undefined

function readSinkOptions(a: ArgCursor, c: SinkConfig, t: SinkTarget, options: Record<string, SinkOption>): void {
  const seen = new Set<string>()
  while (!a.done()) {
    const w = a.peek()!
    const option = w.kind === 'word' && Object.hasOwn(options, w.text) ? options[w.text]! : undefined
    if (!option) return void a.fail('bad-argument', `unknown option '${w.text}' of '${a.name}'; options: ${Object.keys(options).join(', ')}`, w.span)
    if (seen.has(w.text)) return void a.fail('duplicate-field', `'${w.text}' is given twice`, w.span)
    seen.add(w.text)
    a.accept(w.text)
    if (!option(a, c)) return
  }
  c.target = t
}

function sinkTarget(name: 'redis' | 'http' | 'file', usage: string, read: (a: ArgCursor, c: SinkConfig) => void): Field<SinkConfig> {
  return {
    name,
    usage,
    read(a, c) {
      if (c.targetSpan) return void a.fail('two-targets', 'a sink writes to one place: declare another sink for another target', a.statement.span)
      c.targetSpan = a.statement.words[0]!.span
      read(a, c)
    },
  }
}

export const sinkBlock: BlockKind<SinkConfig> = {
  kind: 'sink',
  init: () => ({}),
  fields: [
    sinkTarget('redis', 'redis stream "key" [maxlen N] [batch N] [every DURATION]', (a, c) => {
      if (!a.oneOf(['stream'] as const, "'stream'")) return
      const key = a.string('a "stream key"')
      if (!key) return
      if (!key.value) return void a.fail('bad-argument', 'the stream key is empty', key.arg.span)
      const t: SinkTarget = { kind: 'redis', key: key.value, maxlen: null }
      readSinkOptions(a, c, t, {
        maxlen: (a) => (t.maxlen = a.integer('a maximum length', 1, 1e12) ?? null) !== null,
        batch: batchOption,
        every: everyOption,
      })
    }),
    sinkTarget('http', 'http URL [batch N] [every DURATION] [format bulk|ndjson] [index "name"] [timeout DURATION]', (a, c) => {
      const url = a.url()
      if (!url) return
      const t: SinkTarget = { kind: 'http', url: url.href, format: 'bulk', index: null, timeoutMs: SINK_DEFAULTS.httpTimeoutMs }
      readSinkOptions(a, c, t, {
        batch: batchOption,
        every: everyOption,
        format: (a) => {
          const f = a.oneOf(['bulk', 'ndjson'] as const, 'a format')
          if (f) t.format = f
          return f !== undefined
        },
        index: (a) => {
          const s = a.string('an "index name"')
          if (s) t.index = s.value
          return s !== undefined
        },
        timeout: (a) => (t.timeoutMs = a.duration() ?? 0) > 0,
      })
    }),
    sinkTarget('file', 'file "path" [rotate SIZE|daily] [keep N] [batch N] [every DURATION]', (a, c) => {
      const path = a.string('a "path"')
      if (!path) return
      if (!path.value) return void a.fail('bad-argument', 'the path is empty', path.arg.span)
      const t: SinkTarget = { kind: 'file', path: path.value, rotate: null, keep: SINK_DEFAULTS.keep }
      readSinkOptions(a, c, t, {
        rotate: (a) => {
          if (a.accept('daily')) return Boolean((t.rotate = 'daily'))
          const next = a.peek()
          if (next?.kind !== 'size')
            return a.fail('bad-argument', `'rotate' expects a size like 100mb, or daily${next ? `, found '${next.text}'` : ''}`) ?? false
          const bytes = a.size()!
          if (bytes < 1024) return a.fail('bad-argument', 'rotate at 1kb or more', next.span) ?? false
          t.rotate = { bytes }
          return true
        },
        keep: (a) => (t.keep = a.integer('how many rotated files to keep', 1, 1000) ?? 0) > 0,
        batch: batchOption,
        every: everyOption,
      })
    }),
    {
      name: 'queue',
      usage: 'queue N',
      read: (a, c) => {
        c.queue = a.integer('a number of entries', 1, 1_000_000)
        a.end()
      },
    },
    {
      name: 'spool',
      usage: 'spool SIZE',
      read: (a, c) => {
        const bytes = a.size()
        if (bytes !== undefined && bytes < 1024) return void a.fail('bad-argument', 'a spool holds at least 1kb', a.statement.words[1]!.span)
        c.spoolBytes = bytes
        a.end()
      },
    },
    {
      name: 'backoff',
      usage: 'backoff DURATION [to DURATION]',
      read: (a, c) => {
        const minMs = a.duration()
        if (minMs === undefined) return
        const maxMs = a.accept('to') ? a.duration() : Math.max(minMs, SINK_DEFAULTS.backoff.maxMs)
        if (maxMs === undefined) return
        if (maxMs < minMs) return void a.fail('bad-argument', 'the longest wait must not be shorter than the first', a.statement.span)
        c.backoff = { minMs, maxMs }
        a.end()
      },
    },
  ],
}

// The checked block with its defaults filled in; undefined when it names no target.
export function sinkSpec(name: string, c: SinkConfig): SinkSpec | undefined {
  if (!c.target) return undefined
  return {
    name,
    target: c.target,
    batch: c.batch ?? SINK_DEFAULTS.batch,
    everyMs: c.everyMs ?? (c.target.kind === 'http' ? SINK_DEFAULTS.httpEveryMs : SINK_DEFAULTS.everyMs),
    queue: c.queue ?? SINK_DEFAULTS.queue,
    spoolBytes: c.spoolBytes ?? SINK_DEFAULTS.spoolBytes,
    backoff: c.backoff ?? { ...SINK_DEFAULTS.backoff },
  }
}

export interface SessionConfig {
  verify?: { upstream: Arg; path: string }
  ttlMs?: number // access tokens
  refreshMs?: number // refresh tokens (the login's family lives as long as its last one)
  singleSignOn?: boolean // a new login revokes the user's older tokens
}

// Lifetimes when the session block names none.
export const SESSION_DEFAULTS = Object.freeze({ ttlMs: 60 * 60_000, refreshMs: 7 * 24 * 60 * 60_000 })

export const sessionBlock: BlockKind<SessionConfig> = {
  kind: 'session',
  init: () => ({}),
  fields: [
    {
      name: 'verify',
      usage: 'verify via UPSTREAM /path',
      read(a, c) {
        if (!a.oneOf(['via'] as const, "'via'")) return
        const upstream = a.word('an upstream name')
        const path = upstream && a.expect(['path'], 'a path')
        a.end()
        if (upstream && path) c.verify = { upstream, path: path.text }
      },
    },
    {
      name: 'ttl',
      usage: 'ttl DURATION',
      read: (a, c) => {
        c.ttlMs = a.duration()
        a.end()
      },
    },
    {
      name: 'refresh',
      usage: 'refresh DURATION',
      read: (a, c) => {
        c.refreshMs = a.duration()
        a.end()
      },
    },
    {
      name: 'single-sign-on',
      usage: 'single-sign-on',
      read: (a, c) => {
        c.singleSignOn = true
        a.end()
      },
    },
  ],
}

export const allBlocks: BlockKind<any>[] = [upstreamBlock, appBlock, sinkBlock, sessionBlock]

function fieldOf<C>(block: BlockKind<C>, words: Arg[]): Field<C> | undefined {
  const two = words.length > 1 ? `${words[0]!.text} ${words[1]!.text}` : ''
  return block.fields.find((f) => f.name === two) ?? block.fields.find((f) => f.name === words[0]!.text)
}

export function readBlock<C>(block: BlockKind<C>, body: Statement[], bag: DiagnosticBag, owner: string): C {
  const into = block.init()
  const seen = new Map<string, Span>()
  for (const st of body) {
    const field = fieldOf(block, st.words)
    const why = block.unavailable?.[st.words[0]!.text]
    if (!field && why) {
      bag.error('not-available', `'${st.words[0]!.text}' is not available in this version of Portcullis: ${why}`, st.words[0]!.span)
      continue
    }
    if (!field) {
      const head = st.words[0]!
      const near = didYouMean(
        head.text,
        block.fields.map((f) => f.name.split(' ')[0]!),
      )
      const elsewhere = allBlocks.find((b) => b !== block && fieldOf(b, st.words))
      const note = near
        ? `did you mean '${near}'?`
        : elsewhere
          ? `'${head.text}' belongs in ${elsewhere.kind === 'session' ? 'the session block' : `an ${elsewhere.kind} block`}`
          : undefined
      bag.error(
        'unknown-field',
        `unknown field '${head.text}' in ${owner}; fields: ${block.fields.map((f) => f.name).join(', ')}`,
        head.span,
        ...(note ? [{ message: note }] : []),
      )
      continue
    }
    const prev = seen.get(field.name)
    if (prev && !field.repeat) {
      bag.error('duplicate-field', `'${field.name}' is set twice in ${owner}`, st.words[0]!.span, { message: 'first set here', span: prev })
      continue
    }
    seen.set(field.name, st.words[0]!.span)
    if (st.block) bag.error('syntax', `'${field.name}' takes no block`, st.span)
    field.read(new ArgCursor(st, bag, field.usage, field.name, field.name.split(' ').length), into)
  }
  return into
}

export interface TierConfig {
  rate: Rate | null // null = unlimited
  burst: number
}

export function readTier(st: Statement, bag: DiagnosticBag): TierConfig | undefined {
  const a = new ArgCursor(st, bag, 'tier NAME RATE [burst N] | tier NAME unlimited', 'tier', 2)
  if (a.accept('unlimited')) {
    a.end()
    return { rate: null, burst: 0 }
  }
  const rate = a.rate()
  if (!rate) return undefined
  const burst = a.accept('burst') ? a.integer('a burst', 0, 1_000_000) : 0
  a.end()
  return burst === undefined ? undefined : { rate, burst }
}
