// For body steps of the response stage: read the answer's body whole (bounded), and give the
// client a new answer with the bytes a step made, counted for the access log.
import type { RequestContext } from './context.ts'
import { GatewayError } from './gateway-error.ts'
import { joined, readUpTo } from './body.ts'

// The most a body step buffers when its directive names no cap.
export const DEFAULT_ANSWER_CAP = 8 * 1024 * 1024

// The answer's body, at most `cap` bytes; a longer one (or one the upstream cut) becomes a
// 502 `bad_gateway` naming `what` buffers it, and nothing of it reaches the client.
export async function readAnswer(res: Response, cap: number, what: string): Promise<Uint8Array> {
  const declared = res.headers.get('content-length')
  if (declared !== null && Number(declared) > cap) {
    void res.body?.cancel().catch(() => {})
    throw tooLong(cap, what)
  }
  if (res.body === null) return new Uint8Array(0)
  const reader = res.body.getReader()
  let read
  try {
    read = await readUpTo(reader, cap)
  } catch {
    throw new GatewayError('bad_gateway', 'the upstream answer was cut before its end')
  }
  if (!read.ended) {
    void reader.cancel().catch(() => {})
    throw tooLong(cap, what)
  }
  return joined(read.parts)
}

function tooLong(cap: number, what: string): GatewayError {
  return new GatewayError('bad_gateway', `the upstream answer is larger than ${cap} bytes, the most ${what} buffers`)
}

// The answer with a new body (and Content-Length), the other headers and status kept;
// `headers` are set on it. The access log's bytes_out counts these bytes.
export function withBody(ctx: RequestContext, res: Response, body: Uint8Array, headers: Record<string, string | null> = {}): Response {
  const out = new Headers(res.headers)
  out.delete('content-length')
  out.delete('transfer-encoding')
  for (const [name, value] of Object.entries(headers)) {
    if (value === null) out.delete(name)
    else out.set(name, value)
  }
  ctx.bytesOut = body.byteLength
  ctx.bodyPending = false
  const noBody = res.status === 204 || res.status === 304 || ctx.method === 'HEAD'
  return new Response(noBody ? null : body, { status: res.status, statusText: res.statusText, headers: out })
}
