// A sink's spool slots: `<spool>/<sink>/0`, `1`, … Each process holds one at a time through a
// `lock` file with its pid; a slot whose process is gone is taken over (slots with entries
// first), so every --workers process spools on its own and a restarted one delivers what its
// predecessor left.
import { existsSync, linkSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const MAX_SLOTS = 256

function alive(pid: number): boolean {
  if (pid === process.pid) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function lockOwner(lock: string): number | null {
  try {
    const pid = Number(readFileSync(lock, 'utf8').trim())
    return Number.isInteger(pid) && pid > 0 ? pid : null
  } catch {
    return null
  }
}

// Takes the slot's lock: true when this process holds it now. A lock whose process is gone is
// broken (renamed aside, then checked to be the one that was judged stale).
function tryLock(slot: string): boolean {
  const lock = join(slot, 'lock')
  const mine = join(slot, `lock.${process.pid}`)
  for (let tries = 0; tries < 3; tries++) {
    writeFileSync(mine, String(process.pid))
    try {
      linkSync(mine, lock)
      return true
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    } finally {
      unlinkSync(mine)
    }
    const owner = lockOwner(lock)
    if (owner !== null && alive(owner)) return false
    const aside = join(slot, `lock.stale.${process.pid}`)
    try {
      renameSync(lock, aside)
    } catch {
      continue // someone else broke it first
    }
    const broke = lockOwner(aside)
    if (broke !== owner && broke !== null && alive(broke)) {
      // A lock taken in between: give it back.
      try {
        linkSync(aside, lock)
      } catch {}
      unlinkSync(aside)
      return false
    }
    unlinkSync(aside)
  }
  return false
}

export function hasData(slot: string): boolean {
  try {
    return readdirSync(slot).some((f) => f.endsWith('.seg') && statSync(join(slot, f)).size > 0)
  } catch {
    return false
  }
}

// A free slot of the sink's directory: one left with entries first (a gateway that stopped,
// or one of several workers that died), else the first free one.
export function claimSlot(dir: string): string {
  mkdirSync(dir, { recursive: true })
  const existing = readdirSync(dir)
    .filter((f) => /^\d+$/.test(f))
    .map(Number)
    .sort((a, b) => a - b)
  for (const n of existing) if (hasData(join(dir, String(n))) && tryLock(join(dir, String(n)))) return join(dir, String(n))
  for (let n = 0; n < MAX_SLOTS; n++) {
    const slot = join(dir, String(n))
    mkdirSync(slot, { recursive: true })
    if (tryLock(slot)) return slot
  }
  throw new Error(`all ${MAX_SLOTS} spool slots under ${dir} are held by running processes`)
}

// Whether a sink's directory holds entries a stopped gateway left behind.
export function hasLeftovers(sinkDir: string): boolean {
  if (!existsSync(sinkDir)) return false
  return readdirSync(sinkDir).some((f) => /^\d+$/.test(f) && hasData(join(sinkDir, f)))
}
