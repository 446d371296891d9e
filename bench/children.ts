import type { Subprocess } from 'bun'

const live = new Set<Subprocess>()

/**
 * Spawns a child in its own process group (so its own children, e.g. nginx or gateway
 * workers, go with it) that is SIGKILLed if this process exits, fails or is interrupted first.
 */
export function spawnChild(cmd: string[], cwd: string): Subprocess<'pipe', 'pipe', 'pipe'> {
  const child = Bun.spawn(cmd, { cwd, stdin: 'pipe', stdout: 'pipe', stderr: 'pipe', detached: true })
  live.add(child)
  void child.exited.then(() => live.delete(child))
  return child
}

function killGroup(child: Subprocess): void {
  try {
    process.kill(-child.pid, 'SIGKILL')
  } catch {
    // the group is already gone
  }
}

export function killAll(): void {
  for (const child of live) {
    child.kill('SIGKILL')
    killGroup(child)
  }
  live.clear()
}

/** SIGTERM, then SIGKILL after `graceMs`; then SIGKILL for any leftovers of its group. Resolves to the exit code, or null if it had to be killed. */
export async function stop(child: Subprocess, graceMs: number): Promise<number | null> {
  child.kill('SIGTERM')
  const timer = new Promise<null>((resolve) => setTimeout(resolve, graceMs, null))
  const code = await Promise.race([child.exited, timer])
  if (code === null) child.kill('SIGKILL')
  await child.exited
  killGroup(child)
  return code
}

process.on('exit', killAll)
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    killAll()
    process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1))
  })
}

/**
 * Reads `stream` to its end, passing complete lines to `onLine` while it returns true;
 * after that the rest is drained undecoded, so a chatty child never blocks on a full pipe.
 */
export async function tapLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => boolean): Promise<void> {
  const decoder = new TextDecoder()
  let pending = ''
  let decoding = true
  for await (const chunk of stream) {
    if (!decoding) continue
    pending += decoder.decode(chunk, { stream: true })
    const lines = pending.split('\n')
    pending = lines.pop() ?? ''
    for (const line of lines) {
      if (!onLine(line)) {
        decoding = false
        break
      }
    }
  }
  if (decoding && pending) onLine(pending)
}

export interface Watched {
  /** Resolves with the ready line; rejects on timeout or when the child exits first. */
  ready: Promise<string>
  /** The last lines of stderr (and of stdout before the ready line). */
  tail: string[]
}

/**
 * Watches stdout and stderr for a line passing `isReady`. Stdout is decoded only until
 * then and drained afterwards; stderr is decoded to the end and passed to `onStderr`.
 */
export function watchChild(
  child: Subprocess<'pipe', 'pipe', 'pipe'>,
  isReady: (line: string) => boolean,
  timeoutMs: number,
  onStderr: (line: string) => void = () => {},
): Watched {
  const tail: string[] = []
  const keep = (line: string) => {
    tail.push(line)
    if (tail.length > 40) tail.shift()
  }
  let found = false
  const ready = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready within ${timeoutMs} ms`)), timeoutMs)
    const check = (line: string): boolean => {
      if (found || !isReady(line)) return false
      found = true
      clearTimeout(timer)
      resolve(line)
      return true
    }
    const out = tapLines(child.stdout, (line) => {
      if (check(line)) return false
      keep(line)
      return !found
    })
    const err = tapLines(child.stderr, (line) => {
      keep(line)
      onStderr(line)
      check(line)
      return true
    })
    void Promise.all([out, err, child.exited]).then(([, , code]) => {
      clearTimeout(timer)
      if (!found) reject(new Error(`exited with code ${code} before it was ready`))
    })
  })
  return { ready, tail }
}

/** Free loopback ports, all held open at once so they differ. */
export function freePorts(count: number): number[] {
  const listeners = Array.from({ length: count }, () => Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } }))
  const ports = listeners.map((l) => l.port)
  for (const l of listeners) l.stop(true)
  return ports
}
