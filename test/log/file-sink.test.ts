// The file sink's rotation on a real temporary directory, with the clock given (daily rotation
// at UTC midnight) — the size rotation and SIGUSR1 run end to end in test/e2e/sinks.test.ts.
import { afterEach, expect, test } from 'bun:test'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileTransport } from '../../src/log/sinks/file-sink.ts'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

function dir(): string {
  const d = mkdtempSync(join(tmpdir(), 'portcullis-file-sink-'))
  dirs.push(d)
  return d
}

const batch = (...ids: string[]) => ({ lines: ids.map((id) => JSON.stringify({ request_id: id })), ids })
const ids = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { request_id: string }).request_id)

test('rotate daily: the first write of a new UTC day moves the file to PATH.DAY; keep N of them', async () => {
  const d = dir()
  let now = Date.parse('2026-03-01T23:59:00Z')
  const t = fileTransport(join(d, 'logs/access.log'), 'daily', 2, () => now)
  expect(await t.deliver(batch('a', 'b'))).toEqual(['ok', 'ok'])
  now = Date.parse('2026-03-02T00:00:01Z')
  await t.deliver(batch('c'))
  now = Date.parse('2026-03-03T08:00:00Z')
  await t.deliver(batch('d'))
  now = Date.parse('2026-03-04T08:00:00Z')
  await t.deliver(batch('e'))
  await t.close()
  const logs = join(d, 'logs')
  expect(readdirSync(logs).sort()).toEqual(['access.log', 'access.log.2026-03-02', 'access.log.2026-03-03'])
  expect(ids(join(logs, 'access.log.2026-03-02'))).toEqual(['c'])
  expect(ids(join(logs, 'access.log.2026-03-03'))).toEqual(['d'])
  expect(ids(join(logs, 'access.log'))).toEqual(['e'])
})

test('rotate SIZE splits a batch so no file passes the size; a line longer than it gets a file alone', async () => {
  const d = dir()
  const path = join(d, 'a.log')
  const t = fileTransport(path, { bytes: 60 }, 10)
  const line = JSON.stringify({ request_id: 'x1' }).length + 1 // 20 bytes
  expect(line).toBe(20)
  await t.deliver(batch('x1', 'x2', 'x3', 'x4', 'x5', 'x6', 'x7'))
  await t.deliver({ lines: [JSON.stringify({ request_id: 'long', pad: 'p'.repeat(100) })], ids: ['long'] })
  await t.close()
  expect(ids(`${path}.3`)).toEqual(['x1', 'x2', 'x3'])
  expect(ids(`${path}.2`)).toEqual(['x4', 'x5', 'x6'])
  expect(ids(`${path}.1`)).toEqual(['x7'])
  expect(ids(path)).toEqual(['long'])
})
