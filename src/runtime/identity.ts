// Who is calling: apps (from policy files and from the store), the typed identity a request
// carries once a `require` directive established it, and the directory directives look apps up in.
import { createPublicKey, type KeyObject } from 'node:crypto'
import type { StoredApp } from '../store/app-record.ts'
import { ipMatcher, parseCidr, type IpMatcher } from './ip.ts'

// A secret or API key with its validity window (ms since the epoch; null = open).
export interface Credential {
  readonly value: Uint8Array // a secret's UTF-8 bytes; an API key's SHA-256
  readonly from: number | null
  readonly until: number | null
}

export function validAt(c: Credential, now: number): boolean {
  return (c.from === null || now >= c.from) && (c.until === null || now < c.until)
}

export interface App {
  readonly name: string
  readonly source: 'file' | 'store'
  readonly key: string | null // the public key id (`keyid` of its signatures)
  readonly secrets: readonly Credential[]
  readonly apiKeys: readonly Credential[]
  readonly publicKey: KeyObject | null
  readonly certs: ReadonlySet<string> // lower-case hex SHA-256 of the DER
  readonly jwtSubject: string | null
  readonly allowIp: IpMatcher | null
  readonly allowIpText: readonly string[]
  readonly tier: string | null
  readonly group: string | null
  readonly meta: Readonly<Record<string, string>>
}

export type AuthMethod = 'hmac' | 'jwt' | 'mtls' | 'key' | 'session'

export interface User {
  readonly id: string
  readonly info: Readonly<Record<string, unknown>>
}

// Set by the access stage; templates, logs, throttling and response signing read it.
export interface Identity {
  app: App | null
  user: User | null
  jwt: Readonly<Record<string, unknown>> | null
  via: AuthMethod
  // The request's RFC 9421 signature label and value, when it was signed (`sign response` binds to it).
  signature?: { label: string; value: string }
}

// A lookup: the app, none, or 'unavailable' when the answer depends on a store that is not
// answering (a store app may have been revoked meanwhile: fail closed).
export type Lookup = App | null | 'unavailable'

export interface AppDirectory {
  byName(name: string): Lookup
  byKeyId(keyId: string): Lookup
  byApiKey(sha256Hex: string): Lookup
  byCert(sha256Hex: string): Lookup
  bySubject(subject: string): Lookup
  names(): { file: string[]; store: string[] }
}

// Indexes over one set of apps.
export class AppIndex {
  readonly byName = new Map<string, App>()
  readonly byKeyId = new Map<string, App>()
  readonly byApiKey = new Map<string, App>()
  readonly byCert = new Map<string, App>()
  readonly bySubject = new Map<string, App>()

  constructor(apps: Iterable<App>) {
    for (const a of apps) this.add(a)
  }

  add(a: App): void {
    this.byName.set(a.name, a)
    if (a.key !== null) this.byKeyId.set(a.key, a)
    for (const k of a.apiKeys) this.byApiKey.set(Buffer.from(k.value).toString('hex'), a)
    for (const c of a.certs) this.byCert.set(c, a)
    if (a.jwtSubject !== null) this.bySubject.set(a.jwtSubject, a)
  }
}

const instant = (s: string | undefined) => (s === undefined ? null : Date.parse(s))

export function sha256(bytes: string | Uint8Array): Uint8Array {
  return new Bun.CryptoHasher('sha256').update(bytes).digest() as Uint8Array
}

// A stored record → an App. Throws (with the reason) for a record that cannot be used.
export function appFromStored(r: StoredApp): App {
  const cidrs = r.allowIp.map((t) => {
    const c = parseCidr(t)
    if (!c) throw new Error(`allow-ip '${t}' is not an IP address or CIDR`)
    return c
  })
  return Object.freeze({
    name: r.name,
    source: 'store',
    key: r.key ?? null,
    secrets: r.secret.map((c) => ({ value: new TextEncoder().encode(c.value), from: instant(c.from), until: instant(c.until) })),
    apiKeys: r.apiKeySha256.map((c) => ({ value: Buffer.from(c.value, 'hex'), from: instant(c.from), until: instant(c.until) })),
    publicKey: r.publicKey ? createPublicKey(r.publicKey) : null,
    certs: new Set(r.certs),
    jwtSubject: r.jwtSubject ?? null,
    allowIp: cidrs.length ? ipMatcher(cidrs) : null,
    allowIpText: r.allowIp,
    tier: r.tier ?? null,
    group: r.group ?? null,
    meta: Object.freeze({ ...r.meta }),
  } satisfies App)
}

// The app as the admin API and the console show it: never a secret, an API key or its hash.
export function describeApp(a: App, now = Date.now()): Record<string, unknown> {
  const window = (c: Credential) => ({
    from: c.from === null ? null : new Date(c.from).toISOString(),
    until: c.until === null ? null : new Date(c.until).toISOString(),
    valid: validAt(c, now),
  })
  return {
    name: a.name,
    source: a.source,
    key: a.key,
    secrets: a.secrets.map(window),
    'api-keys': a.apiKeys.map(window),
    'public-key': a.publicKey ? a.publicKey.asymmetricKeyType : null,
    'cert-sha256': [...a.certs],
    'jwt-subject': a.jwtSubject,
    'allow-ip': a.allowIpText,
    tier: a.tier,
    group: a.group,
    meta: a.meta,
  }
}
