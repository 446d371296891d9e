import { GatewayError } from '../runtime/gateway-error.ts'
import { defineDirective } from './define.ts'

export default defineDirective({
  name: 'limit body',
  stage: 'access',
  places: ['route', 'defaults'],
  usage: 'limit body SIZE',
  summary: 'Refuses request bodies over SIZE with 413: by Content-Length up front, or while a chunked body streams upstream.',
  read(a) {
    const bytes = a.size()
    a.end()
    return bytes === undefined ? undefined : { bytes }
  },
  compile(cfg) {
    const limit = cfg.bytes
    return function limitBody(req) {
      const length = req.req.headers.get('content-length')
      if (length !== null && Number(length) > limit) {
        return new GatewayError('payload_too_large', `the request body is larger than ${limit} bytes`)
      }
      // A streamed body is counted as it goes (the tightest limit wins).
      if (req.bodyLimit === null || limit < req.bodyLimit) req.bodyLimit = limit
      return undefined
    }
  },
})
