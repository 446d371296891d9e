// One sink's queue, spool and delivery loop, with a scripted transport: order, partial
// answers, refusals, the spool across a stop and a start. (The real transports are tested
// end to end in test/e2e/sinks.test.ts.)
import { afterEach, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Sink } from '../../src/log/sinks/sink.ts'
import type { SinkSpec } from '../../src/log/sinks/spec.ts'
import type { Batch, Outcome, Transport } from '../../src/log/sinks/transport.ts'
import { until } from '../helpers/poll.ts'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

function spec(over: Partial<SinkSpec> = {}): SinkSpec {
  return {
    name: 'audit',
    target: { kind: 'http', url: 'http://127.0.0.1:9/_bulk', format: 'bulk', index: null, timeoutMs: 1000 },
    batch: 50,
    everyMs: 0,
    queue: 10_000,
    spoolBytes: 1024 * 1024,
    backoff: { minMs: 1, maxMs: 20 },
    ...over,
  }
}

// A receiver whose answer to each call is scripted; it keeps every id it took, in order.
class Scripted implements Transport {
  readonly describe = 'scripted'
  readonly calls: string[][] = []
  readonly taken: string[] = []
  constructor(public answer: (batch: Batch, call: number) => Outcome[] | Error) {}
  async deliver(batch: Batch): Promise<Outcome[]> {
    this.calls.push([...batch.ids])
    const a = this.answer(batch, this.calls.length)
    if (a instanceof Error) throw a
    a.forEach((o, i) => o === 'ok' && this.taken.push(batch.ids[i]!))
    return a
  }
  close() {}
}

function sinkWith(t: Transport, over: Partial<SinkSpec> = {}, dir?: string): { sink: Sink; dir: string } {
  const root = dir ?? mkdtempSync(join(tmpdir(), 'portcullis-sink-test-'))
  if (!dir) dirs.push(root)
  const sink = new Sink(spec(over), { spoolDir: join(root, 'audit'), openTransport: async () => t })
  return { sink, dir: root }
}

const entry = (i: number) => ({ time: 't', request_id: `r${i}`, status: 200 })
const ids = (from: number, n: number) => Array.from({ length: n }, (_, i) => `r${from + i}`)

test('a receiver that is down, then up: every entry once, in order, by way of the spool', async () => {
  let up = false
  const t = new Scripted((b) => (up ? b.ids.map(() => 'ok') : new Error('connection refused')))
  const { sink } = sinkWith(t)
  for (let i = 0; i < 1500; i++) {
    sink.offer(entry(i))
    if (i % 100 === 0) await Bun.sleep(1)
  }
  await until(
    () => sink.status(),
    (s) => s.spoolBytes > 0 && s.queued === 0,
    3000,
    'spooled',
  )
  expect(sink.status().up).toBe(false)
  up = true
  for (let i = 1500; i < 2000; i++) sink.offer(entry(i))
  await until(
    () => t.taken.length,
    (n) => n === 2000,
    5000,
    'delivered',
  )
  expect(t.taken).toEqual(ids(0, 2000))
  const s = sink.status()
  expect(s).toMatchObject({ up: true, delivered: 2000, spoolBytes: 0, queued: 0 })
  expect(s.errors).toBeGreaterThan(0)
  await sink.stop()
})

test('a partial answer: only the lines not taken go again, before anything newer; refused ones are dropped', async () => {
  const t = new Scripted((b, call) => (call === 1 ? b.ids.map((_, i) => (i === 3 ? 'rejected' : i % 2 ? 'retry' : 'ok')) : b.ids.map(() => 'ok')))
  const { sink } = sinkWith(t, { batch: 10 })
  for (let i = 0; i < 10; i++) sink.offer(entry(i))
  await until(
    () => t.calls.length,
    (n) => n >= 2,
    2000,
  )
  for (let i = 10; i < 20; i++) sink.offer(entry(i))
  await until(
    () => t.taken.length,
    (n) => n === 19,
    2000,
  )
  expect(t.calls[1]).toEqual(['r1', 'r5', 'r7', 'r9'])
  expect(t.taken).not.toContain('r3')
  expect(new Set(t.taken).size).toBe(19)
  expect(sink.status().dropped.rejected).toBe(1)
  await sink.stop()
})

test('a stopped sink leaves its entries in the spool; the next one delivers them first', async () => {
  const down = new Scripted(() => new Error('down'))
  const first = sinkWith(down)
  for (let i = 0; i < 300; i++) first.sink.offer(entry(i))
  await until(
    () => down.calls.length,
    (n) => n > 0,
    2000,
  )
  await first.sink.stop()
  expect(first.sink.status().dropped.stopped).toBe(0)

  const t = new Scripted((b) => b.ids.map(() => 'ok'))
  const { sink } = sinkWith(t, {}, first.dir)
  sink.start()
  for (let i = 300; i < 400; i++) sink.offer(entry(i))
  await until(
    () => t.taken.length,
    (n) => n === 400,
    3000,
  )
  expect(t.taken).toEqual(ids(0, 400))
  await sink.stop()
})

test('a full spool drops new entries, counts them and says so until it drains', async () => {
  let up = false
  const t = new Scripted((b) => (up ? b.ids.map(() => 'ok') : new Error('down')))
  const { sink } = sinkWith(t, { spoolBytes: 2048 })
  for (let i = 0; i < 200; i++) sink.offer(entry(i))
  await until(
    () => sink.status(),
    (s) => s.spoolFull && s.queued <= 50, // the batch being retried did not fit: it stays first in line
    3000,
    'full',
  )
  const dropped = sink.status().dropped.spool_full
  expect(dropped).toBeGreaterThan(100)
  up = true
  await until(
    () => sink.status(),
    (s) => !s.spoolFull && s.spoolBytes === 0,
    3000,
    'drained',
  )
  expect(t.taken).toEqual(ids(0, 200 - dropped))
  await sink.stop()
})

test('`every` holds a partial batch until it is due; a full batch goes at once', async () => {
  const t = new Scripted((b) => b.ids.map(() => 'ok'))
  const { sink } = sinkWith(t, { batch: 5, everyMs: 300 })
  const t0 = performance.now()
  sink.offer(entry(0))
  await until(
    () => t.calls.length,
    (n) => n === 1,
    2000,
  )
  expect(performance.now() - t0).toBeGreaterThanOrEqual(250)
  for (let i = 1; i <= 5; i++) sink.offer(entry(i))
  await until(
    () => t.calls.length,
    (n) => n === 2,
    200,
  )
  expect(t.calls[1]).toEqual(ids(1, 5))
  await sink.stop()
})
