// The admin API's app calls: GET /apps, GET /apps/NAME (file and store apps, never a secret),
// PUT /apps/NAME (add or replace a store app), DELETE /apps/NAME (revoke it). Writes go to
// the store, which tells every instance sharing it; each refreshes its copy of the store apps.
import { createPublicKey } from 'node:crypto'
import type { z } from 'zod'
import { appFromStored, describeApp, type App } from '../runtime/identity.ts'
import { GatewayError } from '../runtime/gateway-error.ts'
import { parseCidr } from '../runtime/ip.ts'
import { storeAppsOf } from '../runtime/store-apps.ts'
import { APP_NAME, AppInput, toStoredApp, type StoredApp } from '../store/app-record.ts'
import { StoreUnavailable } from '../store/store.ts'
import type { Gateway } from './gateway.ts'
import { event } from '../log/events.ts'

export const MAX_APP_BODY = 64 * 1024

type Answer = Response | GatewayError

interface Issue {
  path: PropertyKey[]
  message: string
}

// `allow-ip[1]`, `meta.partner_code`: the field as the body spells it.
const fieldOf = (path: readonly PropertyKey[]) =>
  path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join('') || 'the body'

// Zod's issues, with unknown keys and union failures said about the field they concern.
function zodIssues(issues: readonly z.core.$ZodIssue[], prefix: PropertyKey[] = []): Issue[] {
  return issues.flatMap((i): Issue[] => {
    const path = [...prefix, ...i.path]
    if (i.code === 'unrecognized_keys') {
      const known = path.length ? '' : ` (the fields are ${Object.keys(AppInput.shape).join(', ')})`
      return i.keys.map((k) => ({ path: [...path, k], message: `unknown field${known}` }))
    }
    if (i.code === 'invalid_union' && i.errors.length) {
      // The alternative that got furthest says most (`allow-ip[1]` rather than `allow-ip`).
      const depth = (branch: readonly z.core.$ZodIssue[]) => Math.max(...branch.map((b) => b.path.length))
      const best = i.errors.reduce((a, b) => (depth(b) > depth(a) ? b : a))
      return zodIssues(best, path)
    }
    return [{ path, message: i.message }]
  })
}

// A value said back in a detail, cut short: a body may be 64 KiB.
const quote = (s: string) => `'${s.length > 80 ? `${s.slice(0, 80)}…` : s}'`

function invalid(issues: Issue[]): GatewayError {
  const text = issues.map((i) => `${fieldOf(i.path)}: ${i.message}`).join('; ')
  return new GatewayError('bad_request', `the app is not valid: ${text}`)
}

// The NAME of /apps/NAME exactly as sent: never percent-decoded or case-folded.
function nameIn(rest: string): string | GatewayError {
  if (rest.includes('%')) return new GatewayError('bad_request', 'the app name in the path contains %: app names are exact and never percent-decoded')
  if (!APP_NAME.test(rest))
    return new GatewayError('bad_request', `${quote(rest)} is not an app name: a letter or _, then up to 63 letters, digits, _ or -`)
  return rest
}

async function readJson(req: Request): Promise<unknown> {
  const tooLarge = new GatewayError('payload_too_large', `an app is at most ${MAX_APP_BODY / 1024} KiB of JSON`)
  const declared = req.headers.get('content-length')
  if (declared !== null && Number(declared) > MAX_APP_BODY) return tooLarge
  const chunks: Uint8Array[] = []
  let size = 0
  if (req.body) {
    for await (const chunk of req.body) {
      size += chunk.byteLength
      if (size > MAX_APP_BODY) return tooLarge
      chunks.push(chunk)
    }
  }
  // The parser's message may quote the body, which may hold a secret: it is not repeated.
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks)))
  } catch {
    return new GatewayError('bad_request', 'the body is not valid JSON (send the app as a JSON object)')
  }
}

// What makes two apps indistinguishable to a lookup: their key id, API keys, certificates, JWT subject.
interface Claims {
  name: string
  source: 'file' | 'store'
  key: string | null
  apiKeys: string[]
  certs: string[]
  subject: string | null
}

const claimsOfFileApp = (a: App): Claims => ({
  name: a.name,
  source: 'file',
  key: a.key,
  apiKeys: a.apiKeys.map((k) => Buffer.from(k.value).toString('hex')),
  certs: [...a.certs],
  subject: a.jwtSubject,
})

const claimsOfRecord = (r: StoredApp): Claims => ({
  name: r.name,
  source: 'store',
  key: r.key ?? null,
  apiKeys: r.apiKeySha256.map((c) => c.value),
  certs: r.certs,
  subject: r.jwtSubject ?? null,
})

// Everything zod cannot know: the program's tiers, addresses, the PEM, and clashes with other apps.
function checkRecord(gw: Gateway, r: StoredApp, others: Claims[]): Issue[] {
  const issues: Issue[] = []
  r.allowIp.forEach((t, i) => {
    if (!parseCidr(t)) issues.push({ path: ['allow-ip', i], message: `${quote(t)} is not an IP address or CIDR range` })
  })
  const tiers = gw.program.tiers
  if (r.tier !== undefined && !tiers.has(r.tier)) {
    const known = tiers.size ? `the policies declare ${[...tiers].join(', ')}` : 'the policies declare no tier'
    issues.push({ path: ['tier'], message: `no tier ${quote(r.tier)} (${known})` })
  }
  if (r.publicKey !== undefined) {
    try {
      createPublicKey(r.publicKey)
    } catch {
      issues.push({ path: ['public-key'], message: 'not a public key in PEM form that can be read' })
    }
  }
  const mine = claimsOfRecord(r)
  for (const o of others) {
    const who = `the ${o.source} app '${o.name}'`
    if (mine.key !== null && mine.key === o.key) issues.push({ path: ['key'], message: `${quote(mine.key)} is the key of ${who}` })
    mine.apiKeys.forEach((k, i) => {
      if (o.apiKeys.includes(k)) issues.push({ path: ['api-key', i], message: `this API key is ${who}'s` })
    })
    mine.certs.forEach((c, i) => {
      if (o.certs.includes(c)) issues.push({ path: ['cert-sha256', i], message: `this certificate is ${who}'s` })
    })
    if (mine.subject !== null && mine.subject === o.subject)
      issues.push({ path: ['jwt-subject'], message: `${quote(mine.subject)} is the JWT subject of ${who}` })
  }
  return issues
}

function storeError(err: unknown): GatewayError {
  if (err instanceof StoreUnavailable) return new GatewayError('store_unavailable', `the store does not answer: ${err.message}`)
  throw err
}

// With --workers and the embedded store each worker has its own store: an app written here
// (the primary, which serves no traffic) would reach no worker.
function perProcessStore(gw: Gateway): GatewayError | undefined {
  if (gw.settings.store.kind === 'memory' && gw.settings.workerMetrics)
    return new GatewayError('forbidden', 'store apps need --redis when the gateway runs --workers: each worker has its own memory store')
  return undefined
}

function list(gw: Gateway): Answer {
  const dir = gw.program.apps
  const { file, store } = dir.names()
  const apps = [...file, ...store].map((n) => dir.byName(n)).filter((a): a is App => a !== null && a !== 'unavailable')
  return Response.json({ apps: apps.map((a) => describeApp(a)), store: { kind: gw.settings.store.kind, live: gw.settings.store.live } })
}

function show(gw: Gateway, name: string): Answer {
  const found = gw.program.apps.byName(name)
  if (found === 'unavailable') return new GatewayError('store_unavailable', 'the store does not answer: its apps cannot be shown now')
  if (found === null) return new GatewayError('no_route', `no app '${name}'`)
  return Response.json(describeApp(found))
}

async function put(gw: Gateway, name: string, req: Request): Promise<Answer> {
  const body = await readJson(req)
  if (body instanceof GatewayError) return body
  const parsed = AppInput.safeParse(body)
  if (!parsed.success) return invalid(zodIssues(parsed.error.issues))
  const dir = gw.program.apps
  const files = dir.names().file
  if (files.includes(name)) return invalid([{ path: ['name'], message: `'${name}' is a file app: a store app may not shadow it` }])
  const record = toStoredApp(name, parsed.data, new Date())
  const store = gw.settings.store
  let stored: StoredApp[]
  try {
    stored = await store.apps.list()
  } catch (err) {
    return storeError(err)
  }
  const others = [
    ...files.map((n) => dir.byName(n)).flatMap((a) => (a && a !== 'unavailable' ? [claimsOfFileApp(a)] : [])),
    ...stored.filter((r) => r.name !== name).map(claimsOfRecord),
  ]
  const issues = checkRecord(gw, record, others)
  if (issues.length) return invalid(issues)
  let app: App
  try {
    app = appFromStored(record)
  } catch (err) {
    return invalid([{ path: [], message: (err as Error).message }])
  }
  let created: boolean
  try {
    created = await store.apps.put(record)
  } catch (err) {
    return storeError(err)
  }
  await settle(gw)
  event('apps', `admin API: store app '${name}' ${created ? 'added' : 'replaced'}`, { app: name, change: created ? 'added' : 'replaced' })
  return Response.json(describeApp(app), { status: created ? 201 : 200, headers: created ? { location: `/apps/${name}` } : {} })
}

async function remove(gw: Gateway, name: string): Promise<Answer> {
  let had: boolean
  try {
    had = await gw.settings.store.apps.delete(name)
  } catch (err) {
    return storeError(err)
  }
  if (!had) {
    if (gw.program.apps.names().file.includes(name))
      return new GatewayError('bad_request', `'${name}' is a file app: remove it from the policy files, not through the admin API`)
    return new GatewayError('no_route', `no store app '${name}'`)
  }
  await settle(gw)
  event('apps', `admin API: store app '${name}' revoked`, { app: name, change: 'revoked' })
  return new Response(null, { status: 204 })
}

// The store's notification reaches this instance too, but a client reading right after its
// write should see it: read the store apps now.
async function settle(gw: Gateway): Promise<void> {
  await (await storeAppsOf(gw.settings.store)).reload()
}

// Answers /apps and /apps/…; `authorize` says whether a mutation may proceed.
export async function appCalls(gw: Gateway, req: Request, path: string, authorize: (req: Request) => GatewayError | undefined): Promise<Answer> {
  if (path === '/apps') {
    if (req.method !== 'GET') return new GatewayError('method_not_allowed', `${req.method} is not allowed on /apps`, { allow: 'GET' })
    return list(gw)
  }
  const rest = path.slice('/apps/'.length)
  if (rest === '' || rest.includes('/')) return new GatewayError('no_route', `no admin endpoint ${path}`)
  const methods = ['GET', 'PUT', 'DELETE']
  if (!methods.includes(req.method)) {
    return new GatewayError('method_not_allowed', `${req.method} is not allowed on /apps/NAME`, { allow: methods.join(', ') })
  }
  const mutation = req.method !== 'GET'
  const denied = mutation ? authorize(req) : undefined
  if (denied) return denied
  const name = nameIn(rest)
  if (name instanceof GatewayError) return name
  if (!mutation) return show(gw, name)
  const refused = perProcessStore(gw)
  if (refused) return refused
  return req.method === 'PUT' ? put(gw, name, req) : remove(gw, name)
}
