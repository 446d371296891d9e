/**
 * One request through the gateway, compared with the same request sent direct.
 * With `transformed`, also checks the header directives of the orders route; `answerHeaders`
 * must be on the gateway's answer with these values (the throttle rows: RateLimit-Limit).
 * Returns what is wrong.
 */
export async function probe(
  directUrl: string,
  gatewayUrl: string,
  headers: Record<string, string>,
  transformed: boolean,
  answerHeaders: Record<string, string> = {},
): Promise<string[]> {
  const problems: string[] = []
  const expect = (what: string, actual: string | null, wanted: string) => {
    if (actual !== wanted) problems.push(`${what}: got ${JSON.stringify(actual)}, want ${JSON.stringify(wanted)}`)
  }
  const direct = await (await fetch(directUrl, { headers })).text()
  const res = await fetch(gatewayUrl, { headers })
  const body = await res.text()
  const path = new URL(gatewayUrl).pathname
  expect(`GET ${path} status`, String(res.status), '200')
  expect(`GET ${path} body`, body.length > 200 ? `${body.slice(0, 200)}…` : body, direct)
  for (const [name, value] of Object.entries(answerHeaders)) expect(`GET ${path} response header ${name}`, res.headers.get(name), value)
  if (transformed) {
    expect(`GET ${path} response header x-served-by`, res.headers.get('x-served-by'), 'portcullis')
    expect(`GET ${path} x-request-source at upstream`, res.headers.get('x-seen-request-source'), 'gateway')
    expect(`GET ${path} x-debug at upstream`, res.headers.get('x-seen-debug'), '')
  }
  return problems
}

/**
 * The same request without its credentials (`headers` minus `credentialHeaders`): an identity
 * route must refuse it with the gateway's 401, or the row would measure an unchecked route.
 */
export async function probeRefusal(gatewayUrl: string, headers: Record<string, string>, credentialHeaders: string[]): Promise<string[]> {
  const without = new Headers(headers)
  for (const name of credentialHeaders) without.delete(name)
  const res = await fetch(gatewayUrl, { headers: without })
  await res.arrayBuffer()
  const got = `${res.status} ${res.headers.get('gateway-error') ?? '(no Gateway-Error)'}`
  const path = new URL(gatewayUrl).pathname
  return got === '401 unauthenticated' ? [] : [`GET ${path} without ${credentialHeaders.join(', ')}: got ${got}, want 401 unauthenticated`]
}
