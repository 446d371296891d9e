// `http URL [format bulk|ndjson] [index "name"]`: batches POSTed with the gateway's own upstream
// client. `bulk` (the default) speaks Elasticsearch's `_bulk` API (OpenSearch too): a `create`
// action with `_id` = the request id, then the entry, so a batch sent twice stores each entry
// once (the second `create` answers 409, counted as delivered). `ndjson` sends the entries as
// JSON lines (Fluent Bit, Vector, Loki-style receivers); their request_id field is the key a
// receiver deduplicates on.
import { exchange } from '../../runtime/client/socket-client.ts'
import { originOf, UpstreamFailure } from '../../runtime/client/client.ts'
import type { Batch, Outcome, Transport } from './transport.ts'

const MAX_ANSWER_BYTES = 32 * 1024 * 1024
// The whole batch may pass later: overloaded, down, timed out, or not allowed *yet* (a
// credential or an index being set up). Other 4xx answers refuse the batch for good.
const RETRY_STATUS = (s: number) => s >= 500 || s === 408 || s === 429 || s === 401 || s === 403 || s === 404

interface BulkAnswer {
  errors?: boolean
  items?: Record<string, { status?: number; error?: unknown }>[]
}

function itemOutcome(item: Record<string, { status?: number }> | undefined): Outcome {
  const status = item && Object.values(item)[0]?.status
  if (typeof status !== 'number') return 'retry'
  if ((status >= 200 && status < 300) || status === 409) return 'ok'
  return status === 429 || status >= 500 ? 'retry' : 'rejected'
}

export function httpTransport(href: string, format: 'bulk' | 'ndjson', index: string | null, timeoutMs: number): Transport {
  const url = new URL(href)
  const origin = originOf(url)
  const target = url.pathname
  const headerLines = `content-type: application/x-ndjson\r\naccept: application/json\r\nuser-agent: portcullis-sink\r\n`
  const action = (id: string) => JSON.stringify({ create: index === null ? { _id: id } : { _index: index, _id: id } })
  return {
    describe: `${format === 'bulk' ? '_bulk' : 'ndjson'} ${url.href}`,
    async deliver(batch: Batch): Promise<Outcome[]> {
      let text = ''
      for (let i = 0; i < batch.lines.length; i++) text += format === 'bulk' ? `${action(batch.ids[i]!)}\n${batch.lines[i]}\n` : `${batch.lines[i]}\n`
      const body = new TextEncoder().encode(text)
      let response: Response
      try {
        ;({ response } = await exchange({
          origin,
          method: 'POST',
          target,
          headerLines,
          body,
          length: null, // (the client writes Content-Length for a body it has whole)
          bodyLimit: body.byteLength,
          replayable: true, // `create` by id (or a receiver deduplicating by request_id): safe to send again
          timeouts: { connectMs: Math.min(timeoutMs, 5_000), headersMs: timeoutMs, idleMs: timeoutMs },
        }))
      } catch (err) {
        if (err instanceof UpstreamFailure)
          throw new Error(err.kind === 'timeout' ? `${url.origin} did not answer within ${timeoutMs} ms` : err.message)
        throw err
      }
      const status = response.status
      const answer = await readCapped(response)
      if (status < 200 || status >= 300) {
        if (status === 409) return batch.lines.map(() => 'ok')
        if (RETRY_STATUS(status)) throw new Error(`${url.origin} answered ${status}`)
        return batch.lines.map(() => 'rejected')
      }
      if (format === 'ndjson') return batch.lines.map(() => 'ok')
      let parsed: BulkAnswer
      try {
        parsed = JSON.parse(answer) as BulkAnswer
      } catch {
        return batch.lines.map(() => 'ok') // a 2xx that is not Elasticsearch's answer: taken
      }
      if (parsed.errors !== true) return batch.lines.map(() => 'ok')
      if (!Array.isArray(parsed.items) || parsed.items.length !== batch.lines.length)
        throw new Error(`${url.origin}: a _bulk answer with errors but ${parsed.items?.length ?? 'no'} items for ${batch.lines.length}`)
      return parsed.items.map(itemOutcome)
    },
    close() {},
  }
}

async function readCapped(response: Response): Promise<string> {
  if (!response.body) return ''
  const reader = response.body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > MAX_ANSWER_BYTES) {
      await reader.cancel()
      throw new Error(`the answer is longer than ${MAX_ANSWER_BYTES} bytes`)
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks).toString('utf8')
}
