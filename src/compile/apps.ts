// File apps → runtime Apps, with their secrets read from the build's environment.
import { createPublicKey } from 'node:crypto'
import type { AppConfig, RotatingSecret } from '../check/blocks.ts'
import { readSecret, type Env } from '../policy/secrets.ts'
import type { Span } from '../policy/source.ts'
import { sha256, type App, type Credential } from '../runtime/identity.ts'
import { ipMatcher } from '../runtime/ip.ts'

function credentials(list: RotatingSecret[], env: Env, hash: boolean): Credential[] {
  return list.map((s) => {
    const v = readSecret(s.ref, env)!
    return Object.freeze({ value: hash ? sha256(v) : new TextEncoder().encode(v), from: s.from, until: s.until })
  })
}

export function compileFileApp(name: string, c: AppConfig & { span: Span }, env: Env): App {
  return Object.freeze({
    name,
    source: 'file',
    key: c.key ?? null,
    secrets: credentials(c.secrets, env, false),
    apiKeys: credentials(c.apiKeys, env, true),
    publicKey: c.publicKey ? createPublicKey(readSecret(c.publicKey, env)!) : null,
    certs: new Set(c.certs),
    jwtSubject: c.jwtSubject ?? null,
    allowIp: c.allowIp?.length ? ipMatcher(c.allowIp) : null,
    allowIpText: (c.allowIp ?? []).map((x) => x.text ?? ''),
    tier: c.tier?.text ?? null,
    group: c.group ?? null,
    meta: Object.freeze({ ...c.meta }),
  } satisfies App)
}
