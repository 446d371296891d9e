// The gateway's own events on stderr: JSON lines under --log-format json, `portcullis: …`
// lines under pretty; reloads say what changed; /readyz shows a rejected reload and since when.
import { afterEach, describe, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { policyDir, removeDir, startGateway, startUpstream, type RunningGateway, type Upstream } from '../helpers/gateway.ts'
import { until } from '../helpers/poll.ts'

let gw: RunningGateway | undefined
let up: Upstream | undefined
let dir: string | undefined
afterEach(async () => {
  await gw?.stop()
  up?.stop()
  if (dir) removeDir(dir)
  gw = up = dir = undefined
})

const events = (g: RunningGateway) => g.stderr.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>)

async function eventWhere(g: RunningGateway, ok: (e: Record<string, unknown>) => boolean, what: string): Promise<Record<string, unknown>> {
  return (await until(
    () => events(g).find(ok),
    (e) => e !== undefined,
    3_000,
    what,
  ))!
}

describe('--log-format json', () => {
  test('every event is one JSON object with time, level, event and message', async () => {
    up = startUpstream()
    dir = policyDir({ 'a.policy': `upstream api { target ${up.url} }\nmatch GET /a { proxy api }\nmatch GET /b { respond 200 text "b" }\n` })
    gw = await startGateway(dir, ['--log-format', 'json'])
    const start = await eventWhere(gw, (e) => e.event === 'start' && typeof e.routes === 'number', 'the start event')
    expect(start).toMatchObject({ level: 'info', routes: 2, version: 1, store: 'memory' })
    expect(Date.parse(start.time as string)).toBeGreaterThan(Date.now() - 60_000)
    expect(String(start.message)).toContain('2 routes from')
    for (const line of gw.stderr.filter((l) => l.trim() !== '')) expect(() => JSON.parse(line)).not.toThrow()

    // A reload names what changed: /a's directives, /b gone, /c new, the upstream's targets.
    const other = startUpstream()
    try {
      writeFileSync(
        join(dir, 'a.policy'),
        `upstream api { target ${other.url} }\nmatch GET /a { set header X-A = "1"; proxy api }\nmatch GET /c { respond 200 text "c" }\n`,
      )
      const reload = await eventWhere(gw, (e) => e.event === 'reload' && e.version === 2, 'the reload event')
      expect(reload.level).toBe('info')
      expect(reload.changes).toEqual({
        routes: { added: ['GET /c'], removed: ['GET /b'], changed: ['GET /a'] },
        upstreams: { added: [], removed: [], changed: ['api'] },
        apps: { added: [], removed: [], changed: [] },
      })
      expect(String(reload.message)).toContain('routes +GET /c, -GET /b, ~GET /a; upstreams ~api')

      // A rejected reload: a warning with its diagnostics; /readyz stays 200 and says since when.
      writeFileSync(join(dir, 'a.policy'), 'match GET /a { proxy nowhere }\n')
      const rejected = await eventWhere(gw, (e) => e.event === 'reload' && e.level === 'warn', 'the rejected reload event')
      expect(rejected.diagnostics).toEqual([expect.objectContaining({ line: 1, col: 22, message: "unknown upstream 'nowhere'" })])
      const ready = await gw.admin('/readyz')
      expect(ready.status).toBe(200)
      const body = (await ready.json()) as { version: number; rejected_reload: { since: string; reason: string; diagnostics: unknown[] } }
      expect(body.version).toBe(2)
      expect(body.rejected_reload.reason).toBe('files changed')
      expect(Date.parse(body.rejected_reload.since)).toBeLessThanOrEqual(Date.now())
      expect(body.rejected_reload.diagnostics).toHaveLength(1)

      // Fixed: the report is gone.
      writeFileSync(join(dir, 'a.policy'), 'match GET /a { respond 200 text "fixed" }\n')
      await eventWhere(gw, (e) => e.event === 'reload' && e.version === 3, 'the fixing reload')
      expect(((await (await gw.admin('/readyz')).json()) as Record<string, unknown>).rejected_reload).toBeUndefined()
    } finally {
      other.stop()
    }
  })
})

describe('--log-format pretty', () => {
  test('events are readable lines', async () => {
    dir = policyDir({ 'a.policy': 'match GET /a { respond 200 text "a" }\n' })
    gw = await startGateway(dir, ['--log-format', 'pretty'])
    expect(gw.stderr.some((l) => /^portcullis: 1 route from .* \(version 1\), store: memory$/.test(l))).toBe(true)
    expect(gw.stderr.some((l) => l.startsWith('{'))).toBe(false)
  })
})
