// The web console at /console on the admin listener: index.html, console.css and the client
// TypeScript under client/, bundled by Bun in memory once, when the admin listener starts
// (tens of ms; the time is sent as Server-Timing with the script). Nothing is loaded from
// anywhere but this listener: the Content-Security-Policy allows only 'self'.
import { join } from 'node:path'
import { GatewayError } from '../../runtime/gateway-error.ts'
import { newRequestId } from '../../runtime/request-id.ts'

const HERE = import.meta.dir

export const CONSOLE_CSP = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"

interface Asset {
  body: string
  type: string
  headers?: Record<string, string>
}

interface Bundle {
  assets: Map<string, Asset>
  ms: number
}

async function build(): Promise<Bundle> {
  const t0 = performance.now()
  const [js, html, css, icon] = await Promise.all([
    Bun.build({ entrypoints: [join(HERE, 'client/main.ts')], target: 'browser', format: 'esm', minify: true }),
    Bun.file(join(HERE, 'index.html')).text(),
    Bun.file(join(HERE, 'console.css')).text(),
    Bun.file(join(HERE, 'favicon.svg')).text(),
  ])
  const script = js.success ? js.outputs.find((o) => o.kind === 'entry-point') : undefined
  if (!script) throw new Error(`the console's script did not build: ${js.logs.map(String).join('; ') || 'no output'}`)
  const code = await script.text()
  const ms = performance.now() - t0
  const page: Asset = { body: html, type: 'text/html; charset=utf-8' }
  const assets = new Map<string, Asset>([
    ['/console', page],
    ['/console/', page],
    ['/console/console.css', { body: css, type: 'text/css; charset=utf-8' }],
    [
      '/console/console.js',
      { body: code, type: 'text/javascript; charset=utf-8', headers: { 'server-timing': `bundle;dur=${ms.toFixed(1)};desc="Bun.build"` } },
    ],
    ['/console/favicon.svg', { body: icon, type: 'image/svg+xml' }],
  ])
  return { assets, ms }
}

export const isConsolePath = (path: string): boolean => path === '/console' || path.startsWith('/console/')

// Starts the bundle and answers /console and /console/… from it once it is ready.
export function consolePages(): (req: Request, path: string) => Promise<Response> {
  const bundle = build()
  // A failed build is answered on each request; it must not be an unhandled rejection.
  bundle.catch(() => undefined)
  return async (req, path) => {
    const id = newRequestId()
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return new GatewayError('method_not_allowed', `${req.method} is not allowed on ${path}`, { allow: 'GET, HEAD' }).toResponse(id)
    let assets: Map<string, Asset>
    try {
      assets = (await bundle).assets
    } catch (err) {
      return new GatewayError('internal_error', (err as Error).message).toResponse(id)
    }
    const asset = assets.get(path)
    if (!asset) return new GatewayError('no_route', `no console page ${path} (the console is at /console)`).toResponse(id)
    return new Response(req.method === 'HEAD' ? null : asset.body, {
      headers: {
        'content-type': asset.type,
        'content-security-policy': CONSOLE_CSP,
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
        'cache-control': 'no-cache',
        ...asset.headers,
      },
    })
  }
}
