// Malformed policies get diagnostics, never an exception: token soup and random bytes,
// with a fixed seed so a failure can be replayed.
import { afterAll, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { buildProgram, renderDiagnostics } from '../../src/index.ts'
import { policyDir, removeDir } from '../helpers/gateway.ts'

const PIECES = [
  'match',
  'GET',
  'POST,GET',
  '*',
  '/a/{id}',
  '/b/{rest*}',
  '/c/{x:int}',
  '/d/{y:/[0-9]+/}',
  '{',
  '}',
  ';',
  '\n',
  'proxy',
  'up',
  'http://127.0.0.1:1',
  'respond',
  '200',
  'json',
  '"{\\"a\\":1}"',
  '"x{param.id}"',
  'rewrite path',
  'strip prefix',
  'set header',
  'X-A',
  '=',
  'param.id',
  'request.header.X',
  'remove header',
  'set query',
  'remove query',
  'allow ip',
  '10.0.0.0/8',
  '::1',
  ',',
  'deny ip',
  'limit body',
  '1mb',
  '5s',
  '20/min',
  'status',
  'deprecated',
  'since',
  '2027-02-30',
  'sunset',
  'blocked',
  'retired',
  'upstream',
  'target',
  'weight',
  '3',
  'timeout',
  'retry',
  'on',
  'connect-error',
  '502',
  'health',
  'every',
  'balance',
  'least-conn',
  'defaults',
  'app',
  'key',
  'secret',
  'env',
  'file',
  '"nope"',
  'tier',
  'gold',
  'burst',
  'sink',
  'redis',
  'stream',
  'session',
  'verify',
  'via',
  'import',
  '"x.policy"',
  'host',
  '*.example.com',
  '"unterminated',
  '#c',
  '10tb',
  '{{',
  'cert',
  'sha256',
  'meta',
  'group',
  '\t',
  '@',
  '\u00e9',
  '\\',
]

let seed = 20261123
const rnd = (n: number) => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff
  return seed % n
}
const dir = policyDir({})
afterAll(() => removeDir(dir))

async function survives(text: string): Promise<string | null> {
  writeFileSync(join(dir, 'f.policy'), text)
  try {
    const r = await buildProgram(dir)
    if (r.diagnostics) renderDiagnostics(r.diagnostics)
    else void r.program.dispose()
    return null
  } catch (err) {
    return `${JSON.stringify(text)}: ${(err as Error).stack}`
  }
}

test('1,000 token-soup programs: diagnostics, no exception', async () => {
  const crashes: string[] = []
  for (let i = 0; i < 1000; i++) {
    let text = ''
    for (let j = 1 + rnd(40); j > 0; j--) text += PIECES[rnd(PIECES.length)] + (rnd(3) === 0 ? '\n' : ' ')
    const crash = await survives(text)
    if (crash) crashes.push(crash)
  }
  expect(crashes).toEqual([])
})

test('300 files of random characters: diagnostics, no exception', async () => {
  const crashes: string[] = []
  for (let i = 0; i < 300; i++) {
    const text = Array.from({ length: rnd(200) }, () => String.fromCharCode(rnd(3) === 0 ? rnd(0x3000) : 32 + rnd(95))).join('')
    const crash = await survives(text)
    if (crash) crashes.push(crash)
  }
  expect(crashes).toEqual([])
})
