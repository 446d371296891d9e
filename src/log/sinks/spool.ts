// A sink's entries on disk while it cannot take them: JSON lines appended to numbered segment
// files, read back in order from a cursor that moves only once a batch was delivered (so a
// crash between delivery and commit sends that batch again: at least once). Everything lives in
// one slot directory that one process holds at a time (slots.ts).
import {
  closeSync,
  existsSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmdirSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { join } from 'node:path'
import { claimSlot, hasLeftovers } from './slots.ts'

export interface SpoolPosition {
  seg: number
  offset: number
}

export interface SpoolBatch {
  lines: string[]
  end: SpoolPosition // where the cursor goes once these lines are delivered
}

const MAX_SEGMENT_BYTES = 8 * 1024 * 1024
const READ_CHUNK = 256 * 1024
const segName = (n: number) => `${String(n).padStart(12, '0')}.seg`

export class Spool {
  private readonly segs: number[] = []
  private readonly sizes = new Map<number, number>()
  private cursor: SpoolPosition
  private fd: number | null = null
  private unconsumed = 0
  private readonly segmentBytes: number

  private constructor(
    readonly dir: string,
    public cap: number,
  ) {
    this.segmentBytes = Math.min(MAX_SEGMENT_BYTES, Math.max(4096, Math.floor(cap / 4)))
    for (const f of readdirSync(dir)) {
      const m = /^(\d{12})\.seg$/.exec(f)
      if (m) this.segs.push(Number(m[1]))
    }
    this.segs.sort((a, b) => a - b)
    this.cursor = this.readCursor()
    while (this.segs.length > 0 && this.segs[0]! < this.cursor.seg) unlinkSync(join(dir, segName(this.segs.shift()!)))
    if (this.segs.length === 0 || this.segs[0]! !== this.cursor.seg) this.cursor = { seg: this.segs[0] ?? this.cursor.seg, offset: 0 }
    for (const n of this.segs) this.sizes.set(n, statSync(join(dir, segName(n))).size)
    this.repairTail()
    if (this.segs.length === 0) this.newSegment(this.cursor.seg)
    else this.fd = openSync(join(dir, segName(this.last)), 'a')
    this.cursor.offset = Math.min(this.cursor.offset, this.sizes.get(this.cursor.seg) ?? 0)
    this.unconsumed = this.segs.reduce((n, s) => n + this.sizes.get(s)!, 0) - this.cursor.offset
  }

  // Claims a slot under `sinkDir` (throws with a readable message when it cannot).
  static open(sinkDir: string, cap: number): Spool {
    return new Spool(claimSlot(sinkDir), cap)
  }

  // Whether a sink's directory holds entries a stopped gateway left behind.
  static hasLeftovers(sinkDir: string): boolean {
    return hasLeftovers(sinkDir)
  }

  get bytes(): number {
    return this.unconsumed
  }

  private get last(): number {
    return this.segs[this.segs.length - 1]!
  }

  private readCursor(): SpoolPosition {
    try {
      const c = JSON.parse(readFileSync(join(this.dir, 'cursor'), 'utf8')) as SpoolPosition
      if (Number.isInteger(c.seg) && Number.isInteger(c.offset) && c.seg >= 1 && c.offset >= 0) return c
    } catch {}
    return { seg: 1, offset: 0 }
  }

  private writeCursor(): void {
    const tmp = join(this.dir, 'cursor.tmp')
    writeFileSync(tmp, JSON.stringify(this.cursor))
    renameSync(tmp, join(this.dir, 'cursor'))
  }

  // A line cut by a crash in the middle of a write is removed (its entry was never whole).
  private repairTail(): void {
    if (this.segs.length === 0) return
    const path = join(this.dir, segName(this.last))
    const size = this.sizes.get(this.last)!
    if (size === 0) return
    const fd = openSync(path, 'r+')
    try {
      let end = size
      const buf = Buffer.alloc(Math.min(READ_CHUNK, size))
      for (;;) {
        const from = Math.max(0, end - buf.length)
        const n = readSync(fd, buf, 0, end - from, from)
        const nl = buf.subarray(0, n).lastIndexOf(10)
        if (nl !== -1) {
          end = from + nl + 1
          break
        }
        end = from
        if (from === 0) break
      }
      if (end !== size) {
        ftruncateSync(fd, end)
        this.sizes.set(this.last, end)
      }
    } finally {
      closeSync(fd)
    }
  }

  private newSegment(n: number): void {
    if (this.fd !== null) closeSync(this.fd)
    this.fd = openSync(join(this.dir, segName(n)), 'a')
    this.segs.push(n)
    this.sizes.set(n, 0)
  }

  // Appends whole lines (each ends in \n) while they fit under the cap (`force`: regardless);
  // returns how many were written and where the last one ends.
  append(lines: readonly string[], force = false): { written: number; end: SpoolPosition } {
    let text = ''
    let bytes = 0
    let written = 0
    for (const line of lines) {
      const n = Buffer.byteLength(line) + 1
      if (!force && this.unconsumed + bytes + n > this.cap) break
      text += `${line}\n`
      bytes += n
      written++
    }
    if (written > 0) {
      if (this.sizes.get(this.last)! >= this.segmentBytes) this.newSegment(this.last + 1)
      const buf = Buffer.from(text)
      for (let off = 0; off < buf.length;) off += writeSync(this.fd!, buf, off, buf.length - off)
      this.sizes.set(this.last, this.sizes.get(this.last)! + buf.length)
      this.unconsumed += buf.length
    }
    return { written, end: { seg: this.last, offset: this.sizes.get(this.last)! } }
  }

  // Up to `max` lines from the cursor (within one segment), without moving it; null when empty.
  peek(max: number): SpoolBatch | null {
    let { seg, offset } = this.cursor
    while (offset >= this.sizes.get(seg)!) {
      if (seg === this.last) return null
      this.commit({ seg: this.segs[1]!, offset: 0 })
      ;({ seg, offset } = this.cursor)
    }
    const size = this.sizes.get(seg)!
    const fd = openSync(join(this.dir, segName(seg)), 'r')
    try {
      let chunk = Math.min(READ_CHUNK, size - offset)
      for (;;) {
        const buf = Buffer.alloc(chunk)
        const n = readSync(fd, buf, 0, chunk, offset)
        const lines: string[] = []
        let at = 0
        while (lines.length < max) {
          const nl = buf.indexOf(10, at)
          if (nl === -1 || nl >= n) break
          if (nl > at) lines.push(buf.toString('utf8', at, nl))
          at = nl + 1
        }
        if (at > 0) return { lines, end: { seg, offset: offset + at } }
        // No whole line in the chunk: a longer one; read more, or skip a cut tail at the end.
        if (offset + chunk >= size) return { lines: [], end: { seg, offset: size } }
        chunk = Math.min(chunk * 4, size - offset)
      }
    } finally {
      closeSync(fd)
    }
  }

  // Everything before `end` was delivered: consumed segments are deleted.
  commit(end: SpoolPosition): void {
    while (this.segs.length > 1 && this.segs[0]! < end.seg) {
      const n = this.segs.shift()!
      unlinkSync(join(this.dir, segName(n)))
      this.sizes.delete(n)
    }
    this.cursor = { ...end }
    this.unconsumed = this.segs.reduce((n, s) => n + this.sizes.get(s)!, 0) - end.offset
    // All delivered: start a fresh segment, so the disk is given back.
    if (this.unconsumed === 0 && this.sizes.get(this.last)! > 0) {
      const old = this.last
      this.newSegment(old + 1)
      this.segs.shift()
      this.sizes.delete(old)
      unlinkSync(join(this.dir, segName(old)))
      this.cursor = { seg: this.last, offset: 0 }
    }
    this.writeCursor()
  }

  // Syncs and lets the slot go; an empty slot leaves nothing behind.
  close(): void {
    if (this.fd !== null) {
      try {
        fsyncSync(this.fd)
      } catch {}
      closeSync(this.fd)
      this.fd = null
    }
    if (this.unconsumed === 0) {
      for (const n of this.segs) unlinkSync(join(this.dir, segName(n)))
      for (const f of ['cursor']) if (existsSync(join(this.dir, f))) unlinkSync(join(this.dir, f))
    } else this.writeCursor()
    try {
      unlinkSync(join(this.dir, 'lock'))
    } catch {}
    if (this.unconsumed === 0) {
      try {
        rmdirSync(this.dir)
      } catch {}
    }
  }
}
