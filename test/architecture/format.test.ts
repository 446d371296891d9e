// House style: one formatter, and the tree is formatted (`npm run format` fixes it).
import { expect, test } from 'bun:test'
import { join } from 'node:path'
import { ROOT } from '../helpers/gateway.ts'

test('every TypeScript file is formatted with the project prettier config', async () => {
  const proc = Bun.spawn(
    ['node', join(ROOT, 'node_modules/prettier/bin/prettier.cjs'), '--list-different', 'src', 'grammar', 'test', 'bench', 'policies'],
    {
      cwd: ROOT,
      stdout: 'pipe',
      stderr: 'pipe',
    },
  )
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited])
  expect(out.trim().split('\n').filter(Boolean)).toEqual([])
  expect(code).toBe(0)
}, 30_000)
