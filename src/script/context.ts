// The `ctx` a script gets: views over the request context, made per request and read lazily
// (an empty script costs one small object). Private fields (#) keep the gateway's own objects
// (the request context, app records with their secrets) out of a script's reach.
import type { AccessLogEntry, RequestContext, Stage } from '../runtime/context.ts'
import type { App, User } from '../runtime/identity.ts'
import { event } from '../log/events.ts'
import type {
  Answer,
  AnswerBody,
  AuthMethod,
  LogContext,
  LogFieldValue,
  ReadonlyHeaders,
  Refusal,
  RefusalCode,
  ScriptApp,
  ScriptContext,
  ScriptKV,
  ScriptRequest,
  ScriptUser,
} from './api.ts'
import { answer, refusal } from './verdicts.ts'

// Every stage but the terminal's.
export type ScriptStage = Exclude<Stage, 'proxy'>

// One script on one route, as compiled.
export interface ScriptSite {
  readonly stage: ScriptStage
  readonly script: string // the path as the policy wrote it
  readonly route: string
  readonly kv: ScriptKV
  readonly budgetMs: number
  // Run the synchronous part under node:vm's watchdog, which can interrupt it at the budget.
  readonly interruptible: boolean
}

class HeaderView implements ReadonlyHeaders {
  #h: Headers
  constructor(h: Headers) {
    this.#h = h
  }
  get(name: string): string | null {
    return this.#h.get(name)
  }
  has(name: string): boolean {
    return this.#h.has(name)
  }
  entries(): IterableIterator<[string, string]> {
    return this.#h.entries()
  }
  forEach(fn: (value: string, name: string) => void): void {
    for (const [name, value] of this.#h) fn(value, name)
  }
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.#h.entries()
  }
}

class RequestView implements ScriptRequest {
  #ctx: RequestContext
  #query: URLSearchParams | null = null
  #headers: HeaderView | null = null
  constructor(ctx: RequestContext) {
    this.#ctx = ctx
  }
  get id(): string {
    return this.#ctx.id
  }
  get method(): string {
    return this.#ctx.method
  }
  get host(): string {
    return this.#ctx.host
  }
  get path(): string {
    return this.#ctx.path
  }
  get query(): URLSearchParams {
    return (this.#query ??= new URLSearchParams(this.#ctx.rawQuery))
  }
  get headers(): ReadonlyHeaders {
    return (this.#headers ??= new HeaderView(this.#ctx.req.headers))
  }
  get ip(): string {
    return this.#ctx.ip
  }
  get params(): Readonly<Record<string, string>> {
    return this.#ctx.params
  }
  get route(): string {
    return this.#ctx.route.id
  }
}

// An app as scripts see it: its name, meta, tier and group. One view per app record.
const appViews = new WeakMap<App, ScriptApp>()
function appView(a: App): ScriptApp {
  let v = appViews.get(a)
  if (!v) appViews.set(a, (v = Object.freeze({ name: a.name, meta: a.meta, tier: a.tier, group: a.group })))
  return v
}
const userViews = new WeakMap<User, ScriptUser>()
function userView(u: User): ScriptUser {
  let v = userViews.get(u)
  if (!v) userViews.set(u, (v = Object.freeze({ id: u.id, info: u.info })))
  return v
}

function logFields(fields: unknown): Record<string, LogFieldValue> {
  if (fields === undefined || fields === null || typeof fields !== 'object') return {}
  const out: Record<string, LogFieldValue> = {}
  for (const [k, v] of Object.entries(fields)) if (v === null || ['string', 'number', 'boolean'].includes(typeof v)) out[k] = v as LogFieldValue
  return out
}

// What every stage's context has.
export class BaseContext implements Omit<ScriptContext, 'refuse' | 'respond'> {
  #ctx: RequestContext
  #site: ScriptSite
  #request: RequestView | null = null
  constructor(ctx: RequestContext, site: ScriptSite) {
    this.#ctx = ctx
    this.#site = site
  }
  get request(): ScriptRequest {
    return (this.#request ??= new RequestView(this.#ctx))
  }
  get app(): ScriptApp | null {
    const a = this.#ctx.identity?.app
    return a ? appView(a) : null
  }
  get user(): ScriptUser | null {
    const u = this.#ctx.identity?.user
    return u ? userView(u) : null
  }
  get jwt(): Readonly<Record<string, unknown>> | null {
    return this.#ctx.identity?.jwt ?? null
  }
  get via(): AuthMethod | null {
    return this.#ctx.identity?.via ?? null
  }
  get kv(): ScriptKV {
    return this.#site.kv
  }
  log(message: string, fields?: Record<string, LogFieldValue>): void {
    const s = this.#site
    event('script', `${s.stage} script ${s.script} on ${s.route}: ${String(message)}`, {
      ...logFields(fields),
      route: s.route,
      script: s.script,
      request_id: this.#ctx.id,
    })
  }
}

// The contexts of the stages where a script may end the request (all but the log stage).
export class StageContext extends BaseContext implements ScriptContext {
  // (Refusal and Answer are opaque to scripts: the classes stand behind them.)
  refuse(code: RefusalCode, detail?: string, headers?: Record<string, string>): Refusal {
    return refusal(code, detail, headers) as unknown as Refusal
  }
  respond(status: number, body?: AnswerBody, headers?: Record<string, string>): Answer {
    return answer(status, body, headers) as unknown as Answer
  }
}

// A log script's context: no verdicts (the answer is gone), the access-log line to read and add to.
export class LogScriptContext extends BaseContext implements LogContext {
  #entry: AccessLogEntry
  #view: Readonly<Record<string, string | number | null>> | null = null
  #open = true
  constructor(ctx: RequestContext, site: ScriptSite, entry: AccessLogEntry) {
    super(ctx, site)
    this.#entry = entry
  }
  get status(): number {
    return this.#entry.status as number
  }
  // The line as it will be written: a field left undefined (trace_id, untraced) is not in it.
  get entry(): Readonly<Record<string, string | number | null>> {
    if (this.#view === null) {
      const view: Record<string, string | number | null> = {}
      for (const [k, v] of Object.entries(this.#entry)) if (v !== undefined) view[k] = v
      this.#view = Object.freeze(view)
    }
    return this.#view
  }
  addField(name: string, value: LogFieldValue): void {
    if (!this.#open) throw new Error('addField: the access-log line was written when the script first awaited')
    if (typeof name !== 'string' || !/^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/.test(name))
      throw new TypeError(`addField: '${String(name)}' is not a field name`)
    if (this.#entry[name] !== undefined) throw new TypeError(`addField: the line already has '${name}'`)
    if (value !== null && typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean')
      throw new TypeError('addField: a value is a string, number, boolean or null')
    this.#entry[name] = typeof value === 'boolean' ? String(value) : value
    this.#view = null
  }
  static close(c: LogScriptContext): void {
    c.#open = false
  }
}
