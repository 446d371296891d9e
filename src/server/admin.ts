// The admin listener on 127.0.0.1: health, readiness, metrics, routes, reload, apps (admin-apps.ts),
// and what the web console reads (admin-console-api.ts: traffic, upstreams, reloads, source, explain).
import type { Server } from 'bun'
import { diagnosticJson } from '../policy/diagnostics.ts'
import { GatewayError } from '../runtime/gateway-error.ts'
import { newRequestId } from '../runtime/request-id.ts'
import { appCalls } from './admin-apps.ts'
import { consoleApi } from './admin-console-api.ts'
import { consolePages, isConsolePath } from './console/serve.ts'
import type { Gateway } from './gateway.ts'
import { sinkTrouble } from '../log/sinks/metrics.ts'

const json = (body: unknown, status = 200) => Response.json(body, { status })

function authorize(req: Request, token: string | undefined): GatewayError | undefined {
  if (!token) return new GatewayError('forbidden', 'admin changes are disabled: start the gateway with --admin-token')
  const auth = req.headers.get('authorization') ?? ''
  if (!auth.startsWith('Bearer '))
    return new GatewayError('unauthenticated', 'send Authorization: Bearer <admin token>', { 'www-authenticate': 'Bearer' })
  const given = Buffer.from(auth.slice(7))
  const want = Buffer.from(token)
  if (given.length !== want.length || !crypto.timingSafeEqual(given, want)) return new GatewayError('forbidden', 'wrong admin token')
  return undefined
}

export function startAdmin(gw: Gateway, port: number, token: string | undefined): Server<undefined> {
  const consoleCalls = consoleApi(gw)
  // The web console (src/server/console/): bundled once, now, and served at /console.
  const consolePage = consolePages()
  const routes: Record<string, (req: Request) => Response | GatewayError | Promise<Response | GatewayError>> = {
    ...consoleCalls.routes,
    'GET /healthz': () => json({ status: 'ok' }),
    'GET /readyz': async () => {
      try {
        await gw.settings.store.ping()
        const sinks = sinkTrouble([...(gw.settings.sinks?.statuses() ?? []), ...(gw.settings.workerSinks?.() ?? [])])
        if (sinks) return json({ status: 'not ready', reason: sinks }, 503)
        // Still ready after a rejected reload (the last good program serves), but it says so.
        const rejected = gw.rejected && {
          rejected_reload: { since: gw.rejected.since, reason: gw.rejected.reason, diagnostics: gw.rejected.diagnostics },
        }
        return json({ status: 'ready', version: gw.program.version, store: gw.settings.store.kind, ...rejected })
      } catch (err) {
        return json({ status: 'not ready', reason: `store (${gw.settings.store.kind}) does not answer: ${(err as Error).message}` }, 503)
      }
    },
    'GET /metrics': () => new Response(gw.metricsText(), { headers: { 'content-type': 'text/plain; version=0.0.4' } }),
    'GET /routes': () => json({ version: gw.program.version, routes: gw.program.routeTable() }),
    'POST /reload': async (req) => {
      const denied = authorize(req, token)
      if (denied) return denied.toResponse(newRequestId())
      const result = await gw.reload('admin API')
      if (result.diagnostics) return json({ diagnostics: result.diagnostics.map(diagnosticJson) }, 422)
      return json({ version: result.program.version, changes: gw.lastChanges })
    },
  }
  return Bun.serve({
    hostname: '127.0.0.1',
    port,
    async fetch(req) {
      const path = new URL(req.url).pathname
      if (isConsolePath(path)) return consolePage(req, path)
      if (path === '/apps' || path.startsWith('/apps/')) {
        const answer = await appCalls(gw, req, path, (r) => authorize(r, token))
        return answer instanceof GatewayError ? answer.toResponse(newRequestId()) : answer
      }
      const route = routes[`${req.method} ${path}`]
      if (route) {
        const answer = await route(req)
        return answer instanceof GatewayError ? answer.toResponse(newRequestId()) : answer
      }
      const methods = Object.keys(routes)
        .filter((k) => k.endsWith(` ${path}`))
        .map((k) => k.split(' ')[0]!)
      const id = newRequestId()
      if (methods.length)
        return new GatewayError('method_not_allowed', `${req.method} is not allowed on ${path}`, { allow: methods.join(', ') }).toResponse(id)
      return new GatewayError('no_route', `no admin endpoint ${path}`).toResponse(id)
    },
  })
}
