// A response script's ctx.response: the terminal's answer, its body read only when asked for.
// After the script, `finish` gives the client the answer: the same one (headers edited in
// place, the body still streaming) unless the script read or replaced the body.
import zlib from 'node:zlib'
import { readAnswer, withBody } from '../runtime/answer-body.ts'
import type { RequestContext } from '../runtime/context.ts'
import { GatewayError } from '../runtime/gateway-error.ts'
import type { AnswerBody, ResponseContext, ScriptResponse } from './api.ts'
import { StageContext, type ScriptSite } from './context.ts'
import { bodyBytes } from './verdicts.ts'

const WHAT = 'the response script'
const utf8 = new TextDecoder()
// Headers that describe the body the upstream sent, wrong once the script replaces it.
const ABOUT_THE_BODY = ['content-encoding', 'etag', 'content-digest', 'content-md5', 'digest', 'repr-digest']

function decode(coding: string | null, bytes: Uint8Array, cap: number): Uint8Array {
  const c = coding?.trim().toLowerCase() ?? 'identity'
  const opts = { maxOutputLength: cap }
  try {
    if (c === 'identity' || c === '') return bytes
    if (c === 'gzip' || c === 'x-gzip') return zlib.gunzipSync(bytes, opts)
    if (c === 'br') return zlib.brotliDecompressSync(bytes, opts)
    if (c === 'zstd') return zlib.zstdDecompressSync(bytes, opts)
    if (c === 'deflate') {
      try {
        return zlib.inflateSync(bytes, opts)
      } catch {
        return zlib.inflateRawSync(bytes, opts) // servers that send raw deflate
      }
    }
  } catch (err) {
    const large = (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE'
    throw new GatewayError(
      'bad_gateway',
      large ? `the decoded upstream answer is larger than ${cap} bytes, the most ${WHAT} buffers` : `the upstream answer's ${c} encoding is corrupt`,
    )
  }
  throw new GatewayError('bad_gateway', `the upstream answer is content-encoded (${c}), which ${WHAT} cannot read`)
}

class ResponseView implements ScriptResponse {
  #ctx: RequestContext
  #res: Response
  #cap: number
  // The body as it came (`raw`, still encoded) and as the script reads it.
  #read: Promise<{ raw: Uint8Array; plain: Uint8Array }> | null = null
  #replacement: Uint8Array | null | undefined = undefined
  #framing: [string | null, string | null] | null = null
  #open = true
  constructor(ctx: RequestContext, res: Response, cap: number) {
    this.#ctx = ctx
    this.#res = res
    this.#cap = cap
  }
  get status(): number {
    return this.#res.status
  }
  get headers(): Headers {
    const h = this.#res.headers
    this.#framing ??= [h.get('content-length'), h.get('transfer-encoding')]
    return h
  }
  #bytes(): Promise<{ raw: Uint8Array; plain: Uint8Array }> {
    const res = this.#res
    return (this.#read ??= readAnswer(res, this.#cap, WHAT).then((raw) => ({
      raw,
      plain: decode(res.headers.get('content-encoding'), raw, this.#cap),
    })))
  }
  async body(): Promise<Uint8Array> {
    return (await this.#bytes()).plain
  }
  async text(): Promise<string> {
    return utf8.decode(await this.body())
  }
  async json<T>(): Promise<T> {
    return JSON.parse(await this.text()) as T
  }
  setBody(body: AnswerBody): void {
    if (!this.#open) throw new Error("ctx.response.setBody: the script's time is over; the answer went out without it")
    this.#replacement = bodyBytes(body, 'ctx.response.setBody').bytes
  }

  // The answer the client gets after the script (which returned nothing).
  static async finish(v: ResponseView): Promise<Response> {
    v.#open = false
    const ctx = v.#ctx
    const res = v.#res
    if (v.#framing) {
      // The script may not forge the gateway's marker, nor change the framing of the body.
      const [length, te] = v.#framing
      res.headers.delete('gateway-error')
      if (length === null) res.headers.delete('content-length')
      else res.headers.set('content-length', length)
      if (te === null) res.headers.delete('transfer-encoding')
      else res.headers.set('transfer-encoding', te)
    }
    if (v.#replacement !== undefined) {
      if (v.#read === null) await discard(ctx, res)
      const drop = Object.fromEntries(ABOUT_THE_BODY.map((h) => [h, null]))
      return withBody(ctx, res, v.#replacement ?? new Uint8Array(0), drop)
    }
    // Read but not replaced: the bytes as they came, encoding and all.
    if (v.#read !== null) return withBody(ctx, res, (await v.#read).raw)
    return res
  }

  // The script answered instead, or refused: the terminal's answer is dropped.
  static async drop(v: ResponseView): Promise<void> {
    v.#open = false
    // A read under way ends by itself (bounded by the cap); nothing waits for it.
    if (v.#read === null) await discard(v.#ctx, v.#res)
    else v.#read.catch(() => {})
  }
}

async function discard(ctx: RequestContext, res: Response): Promise<void> {
  if (res.body === null || res.bodyUsed) return
  ctx.bodyPending = false
  await res.body.cancel().catch(() => {})
}

export class ResponseScriptContext extends StageContext implements ResponseContext {
  readonly #view: ResponseView
  constructor(ctx: RequestContext, site: ScriptSite, res: Response, cap: number) {
    super(ctx, site)
    this.#view = new ResponseView(ctx, res, cap)
  }
  get response(): ScriptResponse {
    return this.#view
  }
  static finish(c: ResponseScriptContext): Promise<Response> {
    return ResponseView.finish(c.#view)
  }
  static drop(c: ResponseScriptContext): Promise<void> {
    return ResponseView.drop(c.#view)
  }
}
