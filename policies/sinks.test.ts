// sinks.policy: GET /api/v1/audited/{id:int} answers from the gateway and hands its access-log
// entry to the audit_file and elastic sinks. The log stage runs once a serving gateway has
// delivered the answer, so the kit shows the two `log to` steps as not run and writes nothing:
// what is tested here is the answer and that both sinks are on the route.
import { afterAll, describe, expect, test } from 'bun:test'
import { existsSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { loadGateway } from 'portcullis/testing'

const gw = await loadGateway(import.meta.dir)
afterAll(() => gw.close())

describe('GET /api/v1/audited/{id:int}', () => {
  test('answers {"audited": id} from the gateway', async () => {
    const r = await gw.request('GET /api/v1/audited/7')
    expect(r.status, r.explain()).toBe(200)
    expect(await r.json()).toEqual({ audited: '7' })
  })

  test('its log stage hands the entry to audit_file, then elastic', async () => {
    const r = await gw.request('GET /api/v1/audited/8')
    const log = r.trace.notReached.filter((s) => s.stage === 'log')
    expect(log.map((s) => [s.directive, s.at.replace(/.*\//, '')])).toEqual([
      ['log to audit_file', 'sinks.policy:24'],
      ['log to elastic', 'sinks.policy:25'],
    ])
    expect(r.explain()).toContain('not run')
  })

  test('an id that is not an int matches no route', async () => {
    const r = await gw.request('GET /api/v1/audited/x')
    expect(r.status, r.explain()).toBe(404)
  })

  test('nothing is written by a kit gateway: neither the audit file nor the spool changes', async () => {
    const paths = ['logs/audit.log', '.portcullis-spool/elastic'].map((p) => join(process.cwd(), p))
    const state = () => paths.map((p) => (existsSync(p) ? statSync(p).mtimeMs : 'absent'))
    const before = state()
    for (let i = 0; i < 3; i++) expect((await gw.request(`GET /api/v1/audited/${i}`)).status).toBe(200)
    await gw.close()
    expect(state()).toEqual(before)
  })
})
