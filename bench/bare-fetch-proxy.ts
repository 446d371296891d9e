// Yardstick, not a product: the least a Bun proxy can do. Bun.serve whose handler only
// fetch()es the same path from the upstream and returns that Response as it is.
// bun bench/bare-fetch-proxy.ts --upstream http://127.0.0.1:PORT [--exit-on-stdin-close]
// Prints `listening on http://127.0.0.1:PORT`.
import { argValue, exitWithParent } from './lifeline.ts'

const upstream = new URL(argValue('upstream', 'bare-fetch-proxy')).origin

const server = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  fetch(req) {
    const path = req.url.slice(req.url.indexOf('/', req.url.indexOf('//') + 2))
    return fetch(upstream + path, { method: req.method, headers: req.headers, body: req.body, decompress: false })
  },
})

console.log(`listening on http://127.0.0.1:${server.port}`)
exitWithParent(() => server.stop(true))
