// Odd requests get an answer, never an exception or a 500: random paths, methods and headers
// through a compiled program, in process, with a fixed seed.
import { expect, test } from 'bun:test'
import { buildProgram } from '../../src/index.ts'
import { policyDir, removeDir } from '../helpers/gateway.ts'

let seed = 7
const rnd = (n: number) => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff
  return seed % n
}
const PARTS = ['a', 'api', 'v1', 'users', '42', '..', '.', '%2e%2e', '%2F', '%zz', '%00', '%E2%82%AC', '\u00e9', '~', '{x}', '', '%', ';', '@', 'me']
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'PURGE']

test('2,000 random requests: every answer is a response below 500', async () => {
  const dir = policyDir({
    'main.policy': `
defaults { set response header X-Seen = "{request.path}" }
match GET,HEAD /api/v1/users/{id} { set header X-Id = param.id; respond 200 text "{param.id}" }
match * /api/{rest*} { rewrite path /x/{rest*}; set query q = request.query.q; respond 200 json "{\\"p\\":\\"{request.path}\\"}" }
match GET /users/me { status deprecated; respond 204 }
match GET /{a}/{b:int} { respond 200 text "{a}-{b}" }
`,
  })
  try {
    const built = await buildProgram(dir)
    expect(built.diagnostics).toBeUndefined()
    const program = built.program!
    const bad: string[] = []
    for (let i = 0; i < 2000; i++) {
      const path = '/' + Array.from({ length: rnd(6) }, () => PARTS[rnd(PARTS.length)]).join('/')
      const method = METHODS[rnd(METHODS.length)]!
      const headers: Record<string, string> = { 'x-rand': PARTS[rnd(PARTS.length)]!.replace(/[^\x20-\x7e]/g, '') }
      let req: Request
      try {
        req = new Request(`http://gateway.test${path}?q=${PARTS[rnd(PARTS.length)]}`, { method, headers })
      } catch {
        continue // not even a request
      }
      const res = await program.fetch(req)
      await res.arrayBuffer()
      if (res.status >= 500) bad.push(`${method} ${path} → ${res.status}`)
    }
    expect(bad).toEqual([])
  } finally {
    removeDir(dir)
  }
})
