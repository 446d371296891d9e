// `file "path" [rotate SIZE|daily] [keep N]`: JSON lines appended to a file (relative paths are
// relative to the gateway's working directory). `rotate 100mb` moves the file to path.1 (path.1
// to path.2, …) before a line would take it past the size; `rotate daily` moves it to
// path.YYYY-MM-DD at the first write of a new UTC day. `keep N` rotated files are kept. SIGUSR1
// makes it open the path again: for logrotate (move the file, then send SIGUSR1).
import { mkdirSync } from 'node:fs'
import { open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import type { Batch, Outcome, Transport } from './transport.ts'

const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10)

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  )
}

export function fileTransport(pathText: string, rotate: { bytes: number } | 'daily' | null, keep: number, now: () => number = Date.now): Transport {
  const path = resolve(pathText)
  let handle: FileHandle | null = null
  let size = 0
  let day = ''
  let reopenWanted = false
  let writing = false

  async function openFile(): Promise<FileHandle> {
    mkdirSync(dirname(path), { recursive: true })
    const h = await open(path, 'a')
    size = (await h.stat()).size
    day = utcDay(size > 0 ? (await h.stat()).mtimeMs : now())
    return h
  }

  async function closeFile(): Promise<void> {
    const h = handle
    handle = null
    await h?.close()
  }

  async function rotateBySize(): Promise<void> {
    await closeFile()
    const oldest = `${path}.${keep}`
    if (await exists(oldest)) await unlink(oldest)
    for (let i = keep - 1; i >= 1; i--) if (await exists(`${path}.${i}`)) await rename(`${path}.${i}`, `${path}.${i + 1}`)
    await rename(path, `${path}.1`)
  }

  async function rotateByDay(): Promise<void> {
    await closeFile()
    let to = `${path}.${day}`
    for (let n = 1; await exists(to); n++) to = `${path}.${day}.${n}`
    await rename(path, to)
    const name = basename(path)
    const dated = (await readdir(dirname(path)))
      .filter((f) => f.startsWith(`${name}.`) && /^\d{4}-\d{2}-\d{2}(\.\d+)?$/.test(f.slice(name.length + 1)))
      .sort()
    for (const f of dated.slice(0, Math.max(0, dated.length - keep))) await unlink(join(dirname(path), f))
  }

  return {
    describe: `file ${path}`,
    async deliver(batch: Batch): Promise<Outcome[]> {
      writing = true
      try {
        if (reopenWanted) {
          reopenWanted = false
          await closeFile()
        }
        // In pieces that each fit the file's size limit (a line longer than it gets a file alone).
        const limit = rotate !== null && rotate !== 'daily' ? rotate.bytes : Infinity
        let at = 0
        while (at < batch.lines.length) {
          handle ??= await openFile()
          if (rotate === 'daily' && size > 0 && utcDay(now()) !== day) await rotateByDay()
          let text = ''
          let bytes = 0
          for (; at < batch.lines.length; at++) {
            const n = Buffer.byteLength(batch.lines[at]!) + 1
            if (size + bytes + n > limit && (size > 0 || bytes > 0)) break
            text += `${batch.lines[at]}\n`
            bytes += n
          }
          if (bytes === 0) {
            await rotateBySize()
            continue
          }
          handle ??= await openFile()
          day = utcDay(now())
          const buf = Buffer.from(text)
          for (let off = 0; off < buf.length;) off += (await handle.write(buf, off, buf.length - off)).bytesWritten
          size += buf.length
        }
        return batch.lines.map(() => 'ok')
      } catch (err) {
        await closeFile().catch(() => {})
        throw err
      } finally {
        writing = false
      }
    },
    reopen() {
      if (writing) reopenWanted = true
      else void closeFile().catch(() => {})
    },
    close: closeFile,
  }
}
