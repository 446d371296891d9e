// The sink spool on a real temporary directory: order, the cap, restarts, cut lines, slots.
import { afterEach, describe, expect, test } from 'bun:test'
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Spool } from '../../src/log/sinks/spool.ts'

const dirs: string[] = []
function sinkDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'portcullis-spool-test-'))
  dirs.push(d)
  return join(d, 'audit')
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

const lines = (from: number, n: number, pad = '') => Array.from({ length: n }, (_, i) => JSON.stringify({ request_id: `r${from + i}`, pad }))

// Everything the spool holds, batch by batch, committing each.
function drain(s: Spool, batch = 7): string[] {
  const out: string[] = []
  for (let b = s.peek(batch); b; b = s.peek(batch)) {
    out.push(...b.lines)
    s.commit(b.end)
  }
  return out
}

describe('spool', () => {
  test('gives lines back in the order they were appended, a batch at a time', () => {
    const s = Spool.open(sinkDir(), 1024 * 1024)
    s.append(lines(0, 10))
    s.append(lines(10, 15))
    const first = s.peek(4)!
    expect(first.lines).toEqual(lines(0, 4))
    // Not committed: the same lines again.
    expect(s.peek(4)!.lines).toEqual(lines(0, 4))
    s.commit(first.end)
    expect(drain(s)).toEqual(lines(4, 21))
    expect(s.bytes).toBe(0)
    expect(s.peek(4)).toBeNull()
    s.close()
  })

  test('takes no more than its cap; force goes past it', () => {
    const s = Spool.open(sinkDir(), 100)
    const one = Buffer.byteLength(lines(0, 1)[0]!) + 1
    const { written } = s.append(lines(0, 50))
    expect(written).toBe(Math.floor(100 / one))
    expect(s.bytes).toBeLessThanOrEqual(100)
    expect(s.append(lines(50, 1)).written).toBe(0)
    expect(s.append(lines(50, 2), true).written).toBe(2)
    s.close()
  })

  test('what was not committed is there after a restart; what was is not', () => {
    const dir = sinkDir()
    const a = Spool.open(dir, 1024 * 1024)
    a.append(lines(0, 20))
    const b = a.peek(5)!
    a.commit(b.end)
    a.peek(5) // read, never committed
    a.close()
    expect(Spool.hasLeftovers(dir)).toBe(true)
    const again = Spool.open(dir, 1024 * 1024)
    expect(drain(again)).toEqual(lines(5, 15))
    again.close()
    expect(Spool.hasLeftovers(dir)).toBe(false)
    // An empty slot leaves nothing behind.
    expect(readdirSync(dir)).toEqual([])
  })

  test('a line cut by a crash is dropped when the spool is opened again', () => {
    const dir = sinkDir()
    const a = Spool.open(dir, 1024 * 1024)
    a.append(lines(0, 3))
    // Simulate a crash: the process dies mid-write and its lock stays behind.
    const slot = join(dir, '0')
    const seg = readdirSync(slot).find((f) => f.endsWith('.seg'))!
    appendFileSync(join(slot, seg), '{"request_id":"r3","cut')
    writeFileSync(join(slot, 'lock'), '999999999')
    const again = Spool.open(dir, 1024 * 1024)
    expect(again.dir).toBe(slot)
    expect(drain(again)).toEqual(lines(0, 3))
    again.append(lines(3, 1))
    expect(drain(again)).toEqual(lines(3, 1))
    again.close()
  })

  test('spreads over segments and deletes the ones delivered', () => {
    const dir = sinkDir()
    const s = Spool.open(dir, 16 * 1024) // segments of 4 kb
    const pad = 'x'.repeat(100)
    for (let i = 0; i < 40; i++) s.append(lines(i * 10, 10, pad))
    const segs = () => readdirSync(join(dir, '0')).filter((f) => f.endsWith('.seg')).length
    expect(segs()).toBeGreaterThan(2)
    const got = drain(s, 50)
    expect(got.length).toBeLessThan(400) // the cap refused some
    expect(got).toEqual(lines(0, got.length, pad))
    expect(segs()).toBe(1)
    s.close()
  })

  test('a second holder in a live process gets its own slot; a dead holder’s slot is taken over', () => {
    const dir = sinkDir()
    const a = Spool.open(dir, 1024)
    const b = Spool.open(dir, 1024)
    expect(a.dir).toBe(join(dir, '0'))
    expect(b.dir).toBe(join(dir, '1'))
    a.append(lines(0, 2))
    b.close()
    a.close()
    // A lock left by a process that is gone, on a slot with entries: that slot comes first.
    mkdirSync(join(dir, '0'), { recursive: true })
    writeFileSync(join(dir, '0', 'lock'), '999999999')
    const c = Spool.open(dir, 1024)
    expect(c.dir).toBe(join(dir, '0'))
    expect(drain(c)).toEqual(lines(0, 2))
    c.close()
    expect(existsSync(join(dir, '0'))).toBe(false)
  })
})
