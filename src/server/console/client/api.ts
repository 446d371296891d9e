// The admin API, as the console calls it: same origin only, JSON in and out, errors as the
// gateway's problem bodies (`detail` says why) turned into ApiError.
import type { RouteRow } from '../../../runtime/program.ts'
import type { DecisionTrace } from '../../../runtime/decisions.ts'
import type { ReloadChanges } from '../../../runtime/program-changes.ts'
import type { TargetRow } from '../../admin-console-api.ts'

export type { RouteRow, DecisionTrace, ReloadChanges }

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string | null,
    message: string,
  ) {
    super(message)
  }
}

export interface Window_ {
  from: string | null
  until: string | null
  valid: boolean
}

export interface AppView {
  name: string
  source: 'file' | 'store'
  key: string | null
  secrets: Window_[]
  'api-keys': Window_[]
  'public-key': string | null
  'cert-sha256': string[]
  'jwt-subject': string | null
  'allow-ip': string[]
  tier: string | null
  group: string | null
  meta: Record<string, string>
}

export interface AppsAnswer {
  apps: AppView[]
  store: { kind: string; live: boolean }
}

export interface RoutesAnswer {
  version: number
  routes: RouteRow[]
}

export interface SourceAnswer {
  file: string
  lines: string[]
  line: number
}

export interface TrafficPoint {
  t: number
  requests: number
  errors: Record<string, number>
  p50_ms: number | null
  p99_ms: number | null
  throttled: { app: string | null; route: string; n: number }[]
  auth_failures: { app: string | null; route: string; code: string; n: number }[]
}

export interface TrafficAnswer {
  interval_s: number
  points: TrafficPoint[]
}

export type TargetView = TargetRow

export interface UpstreamsAnswer {
  upstreams: { name: string; targets: TargetView[] }[]
}

export interface DiagnosticView {
  file: string | null
  line: number | null
  col: number | null
  message: string
}

export interface ReloadsAnswer {
  version: number
  loaded_at: string
  last: { at: string; source: string; changes: ReloadChanges | null } | null
  rejected: { since: string; reason: string; diagnostics: DiagnosticView[]; text: string } | null
}

export interface ExplainAnswer {
  trace: DecisionTrace
  text: string
}

async function answer<T>(res: Response): Promise<T> {
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`
    if ((res.headers.get('content-type') ?? '').includes('json')) {
      const problem = (await res.json().catch(() => ({}))) as { detail?: string; title?: string; diagnostics?: { message: string }[] }
      // POST /reload answers 422 with the policies' diagnostics rather than a problem.
      const first = problem.diagnostics?.[0]
      const diagnostics = first && `the policies have ${problem.diagnostics!.length} error(s); the first: ${first.message}`
      message = problem.detail ?? diagnostics ?? problem.title ?? message
    }
    throw new ApiError(res.status, res.headers.get('gateway-error'), message)
  }
  if (res.status === 204) return undefined as T
  return (await res.json()) as T
}

async function call<T>(path: string, init: RequestInit): Promise<T> {
  let res: Response
  try {
    res = await fetch(path, { ...init, cache: 'no-store', credentials: 'same-origin' })
  } catch {
    throw new ApiError(0, null, 'the admin API does not answer: is the gateway running?')
  }
  return answer<T>(res)
}

export const get = <T>(path: string): Promise<T> => call<T>(path, { headers: { accept: 'application/json' } })

export function send<T>(method: 'POST' | 'PUT' | 'DELETE', path: string, body: unknown, token?: string): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' }
  if (body !== undefined) headers['content-type'] = 'application/json'
  if (token) headers.authorization = `Bearer ${token}`
  return call<T>(path, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
}

export const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err))

// `policies/apps.policy:28:11` → its file and line.
export function placeOf(location: string): { file: string; line: number } | null {
  const m = /^(.*):(\d+):\d+$/.exec(location) ?? /^(.*):(\d+)$/.exec(location)
  return m ? { file: m[1]!, line: Number(m[2]) } : null
}

export const sourceHref = (file: string, line: number): string => `#/source?file=${encodeURIComponent(file)}&line=${line}`
