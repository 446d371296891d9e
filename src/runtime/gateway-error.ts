// Responses made by the gateway itself: RFC 9457 problem body + `Gateway-Error` header.
const titles: Record<string, [number, string]> = {
  no_route: [404, 'No route'],
  method_not_allowed: [405, 'Method not allowed'],
  unauthenticated: [401, 'Unauthenticated'],
  forbidden: [403, 'Forbidden'],
  payload_too_large: [413, 'Payload too large'],
  rate_limited: [429, 'Rate limited'],
  quota_exceeded: [429, 'Quota exceeded'],
  bad_request: [400, 'Bad request'],
  retired: [410, 'Retired'],
  blocked: [503, 'Blocked'],
  upstream_unavailable: [503, 'Upstream unavailable'],
  store_unavailable: [503, 'Store unavailable'],
  bad_gateway: [502, 'Bad gateway'],
  upstream_timeout: [504, 'Upstream timeout'],
  internal_error: [500, 'Internal error'],
}

export type GatewayErrorCode = keyof typeof titles

export class GatewayError {
  readonly status: number
  readonly title: string

  constructor(
    readonly code: GatewayErrorCode,
    readonly detail: string,
    readonly headers: Record<string, string> = {},
  ) {
    const [status, title] = titles[code]!
    this.status = status
    this.title = title
  }

  toResponse(requestId: string): Response {
    const body = JSON.stringify({
      type: `urn:portcullis:error:${this.code}`,
      title: this.title,
      status: this.status,
      detail: this.detail,
      instance: requestId,
    })
    return new Response(body, {
      status: this.status,
      headers: {
        'content-type': 'application/problem+json',
        'content-length': String(Buffer.byteLength(body)),
        'gateway-error': this.code,
        'x-request-id': requestId,
        ...this.headers,
      },
    })
  }
}
