// --workers N: how the primary supervises its workers. A worker that keeps dying at start is
// restarted with a growing delay (0.5 s, 1 s, 2 s … 30 s), each restart logged with it; at
// start-up a worker that cannot serve stops the gateway; the primary probes no upstream.
import { afterAll, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { closedPort, policyDir, removeDir, runCli, startGateway, freePort } from '../helpers/gateway.ts'

const dirs: string[] = []
afterAll(() => {
  for (const d of dirs) removeDir(d)
})

test('a worker that cannot start is restarted with exponential backoff', async () => {
  const dir = policyDir({ 'main.policy': 'match GET /a { respond 200 text "a" }\n' })
  dirs.push(dir)
  const gw = await startGateway(dir, ['--workers', '2', '--port', String(freePort()), '--no-watch'])
  try {
    const pids = gw.stderr.flatMap((l) => /started worker (\d+)/.exec(l)?.[1] ?? [])
    expect(pids).toHaveLength(2)
    // From now on a new worker fails at start: the policies on disk no longer check.
    writeFileSync(join(dir, 'main.policy'), 'match GET /a { respond 200 text "a"\n')
    process.kill(Number(pids[0]), 'SIGKILL')

    const restarts: { line: string; at: number }[] = []
    for (const delay of ['0.5s', '1s', '2s']) {
      const line = await gw.waitFor('stderr', new RegExp(`worker \\d+ .*; restarting it in ${delay.replace('.', '\\.')}("|$)`), 6_000)
      restarts.push({ line, at: Date.now() })
    }
    expect(restarts[0]!.line).toMatch(new RegExp(`worker ${pids[0]} was killed by SIGKILL after [\\d.]+s; restarting it in 0\\.5s`))
    expect(restarts[1]!.line).toMatch(/exited with 1 after [\d.]+s; restarting it in 1s/)
    expect(restarts[2]!.line).toMatch(/exited with 1 after [\d.]+s; restarting it in 2s/)
    // Between two restart lines: the delay, then the new worker's short life (as it reports it).
    for (const [i, delayMs] of [500, 1_000].entries()) {
      const lived = Number(/after ([\d.]+)s/.exec(restarts[i + 1]!.line)![1]) * 1000
      expect(restarts[i + 1]!.at - restarts[i]!.at - lived).toBeGreaterThanOrEqual(delayMs - 150)
    }
    // The other worker kept serving throughout.
    expect(await (await gw.fetch('/a')).text()).toBe('a')
    expect(gw.stderr.filter((l) => /started worker \d+/.test(l))).toHaveLength(4)
  } finally {
    expect(await gw.stop('SIGTERM')).toBe(0)
  }
}, 15_000)

test('at start-up, workers that cannot serve stop the gateway; the primary ran no health checks', async () => {
  // The port is held without SO_REUSEPORT, so the workers cannot listen on it.
  const holder = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response() })
  const down = closedPort()
  // Checked at once by any process that compiles it: a refused connection, logged within milliseconds.
  const dir = policyDir({
    'main.policy': `upstream down { target http://127.0.0.1:${down}; health GET /h every 1s fails 1 }\nmatch GET /a { proxy down }\n`,
  })
  dirs.push(dir)
  try {
    const r = await runCli(['--policies', dir, '--workers', '2', '--host', '127.0.0.1', '--port', String(holder.port), '--admin-port', '0'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('cannot start the workers')
    expect(r.stderr).toMatch(/worker \d+ exited with 2 during start-up/)
    expect(r.stderr).not.toContain('health check')
  } finally {
    holder.stop(true)
  }
})

test('a primary that is killed takes its workers with it: none keeps serving the port alone', async () => {
  const dir = policyDir({ 'main.policy': 'match GET /a { respond 200 text "a" }\n' })
  dirs.push(dir)
  const gw = await startGateway(dir, ['--workers', '2', '--port', String(freePort()), '--no-watch'])
  const pids = gw.stderr.flatMap((l) => /started worker (\d+)/.exec(l)?.[1] ?? []).map(Number)
  expect(pids).toHaveLength(2)
  expect(await (await gw.fetch('/a')).text()).toBe('a')
  await gw.stop('SIGKILL')
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0)
      return true
    } catch {
      return false
    }
  }
  const deadline = Date.now() + 5_000
  while (pids.some(alive) && Date.now() < deadline) await Bun.sleep(20)
  expect(pids.filter(alive)).toEqual([])
}, 15_000)
