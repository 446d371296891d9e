// Request ids: unique within a process and across processes, in the X-Request-Id alphabet.
import { describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { GENERATED_REQUEST_ID, newRequestId } from '../../src/runtime/request-id.ts'

const HEADER_SAFE = /^[A-Za-z0-9._:\-]{1,128}$/ // what the handler accepts from a trusted proxy
const MODULE = join(import.meta.dir, '../../src/runtime/request-id.ts')

// The counter an id carries: base36 high part, then three base32 digits of the low 12 bits.
const counterOf = (id: string) => parseInt(id.slice(17, -3), 36) * 4096 + parseInt(id.slice(-3), 32)

describe('newRequestId', () => {
  test('100k ids are unique, have the documented form, share the prefix and count up by one', () => {
    const ids = Array.from({ length: 100_000 }, () => newRequestId())
    expect(new Set(ids).size).toBe(ids.length)
    const first = counterOf(ids[0]!)
    ids.forEach((id, i) => {
      if (!GENERATED_REQUEST_ID.test(id) || !HEADER_SAFE.test(id)) throw new Error(`bad id ${JSON.stringify(id)}`)
      if (id.slice(0, 17) !== ids[0]!.slice(0, 17) || counterOf(id) !== first + i) throw new Error(`id ${i} is ${id}`)
    })
  })

  test('two processes produce disjoint ids', async () => {
    const script = `const { newRequestId } = await import(${JSON.stringify(MODULE)}); const ids = []; for (let i = 0; i < 20000; i++) ids.push(newRequestId()); console.log(ids.join('\\n'))`
    const run = async () => {
      const proc = Bun.spawn([process.execPath, '-e', script], { stdout: 'pipe', stderr: 'inherit' })
      const out = await new Response(proc.stdout).text()
      expect(await proc.exited).toBe(0)
      return out.trim().split('\n')
    }
    const [one, two] = await Promise.all([run(), run()])
    expect(one).toHaveLength(20_000)
    expect(two).toHaveLength(20_000)
    const seen = new Set(one)
    expect(two.filter((id) => seen.has(id))).toEqual([])
    expect(one[0]!.slice(0, 16)).not.toBe(two[0]!.slice(0, 16))
    for (const id of [...one.slice(0, 100), ...two.slice(0, 100)]) expect(id).toMatch(GENERATED_REQUEST_ID)
  })
})
