// The benchmark upstream: answers GET …/orders/:id and …/items/:id with ~200 bytes of JSON.
// Prints `listening on http://127.0.0.1:PORT`. With --exit-on-stdin-close it dies with its parent.
import { exitWithParent } from './lifeline.ts'

function order(id: string): string {
  return JSON.stringify({
    id,
    status: 'shipped',
    customer: { id: 'c-1042', name: 'Ada Lovelace' },
    items: [
      { sku: 'SKU-0001', qty: 2, price: 1999 },
      { sku: 'SKU-0042', qty: 1, price: 4500 },
    ],
    total: 8498,
    currency: 'EUR',
  })
}

const server = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  fetch(req) {
    const path = new URL(req.url).pathname
    const match = /\/(?:orders|items)\/([^/]+)$/.exec(path)
    if (req.method !== 'GET' || !match?.[1]) return new Response('not found\n', { status: 404 })
    return new Response(order(match[1]), {
      headers: {
        'content-type': 'application/json',
        'x-seen-request-source': req.headers.get('x-request-source') ?? '',
        'x-seen-debug': req.headers.get('x-debug') ?? '',
      },
    })
  },
})

console.log(`listening on http://127.0.0.1:${server.port}`)

exitWithParent(() => server.stop(true))
