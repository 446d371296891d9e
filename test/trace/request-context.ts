// The parts of a request's context that tracing reads (src/trace/spans.ts), for tests that
// start request spans without a gateway: GET /x/1 on route `GET /x/{id}`.
import type { RequestContext } from '../../src/runtime/context.ts'

export function traceContext(headers: Record<string, string> = {}): RequestContext {
  const route = { id: 'GET /x/{id}', pattern: '/x/{id}' }
  return {
    req: new Request('http://gw/x/1', { headers }),
    id: 'r1',
    start: performance.now(),
    method: 'GET',
    host: 'gw',
    proto: 'http',
    ip: '127.0.0.1',
    path: '/x/1',
    route,
  } as unknown as RequestContext
}
