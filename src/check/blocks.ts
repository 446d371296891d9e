// The fields of declaration blocks (upstream, app, sink, session) and tier lines.
// Each field reads its own arguments through the cursor, like a directive does.
import type { Arg, Statement } from '../policy/ast.ts'
import { ArgCursor, type SecretRef } from '../policy/cursor.ts'
import { didYouMean, type DiagnosticBag } from '../policy/diagnostics.ts'
import type { Rate } from '../policy/literals.ts'
import type { Span } from '../policy/source.ts'
import type { Cidr } from '../runtime/ip.ts'
import { upstreamBlock } from './upstream-block.ts'

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
  kind?: 'redis' | 'http' | 'file'
}

export const sinkBlock: BlockKind<SinkConfig> = {
  kind: 'sink',
  init: () => ({}),
  fields: [
    {
      name: 'redis',
      usage: 'redis stream "key" [maxlen N]',
      read(a, c) {
        c.kind = 'redis'
        if (!a.oneOf(['stream'] as const, "'stream'") || !a.string('a "stream key"')) return
        if (a.accept('maxlen')) a.integer('a maximum length', 1, 1e12)
        a.end()
      },
    },
    {
      name: 'http',
      usage: 'http URL [batch N] [every DURATION]',
      read(a, c) {
        c.kind = 'http'
        if (!a.url()) return
        if (a.accept('batch') && a.integer('a batch size', 1, 100000) === undefined) return
        if (a.accept('every') && a.duration() === undefined) return
        a.end()
      },
    },
    {
      name: 'file',
      usage: 'file "path"',
      read: (a, c) => {
        c.kind = 'file'
        a.string('a "path"')
        a.end()
      },
    },
  ],
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
