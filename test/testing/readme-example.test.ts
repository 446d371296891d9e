// The README's "Testing your policies" example, as a new user takes it: a fresh project folder,
// Portcullis installed from this checkout by path, the README's policy and test copied in,
// `bun test` run there. Then the policy is broken twice (a typo, a changed rule) and the
// failure must point at the policy line.
import { afterAll, expect, test } from 'bun:test'
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BUN, ROOT } from '../helpers/gateway.ts'

const readme = await Bun.file(join(ROOT, 'README.md')).text()
const chapter = /^## Testing your policies\n([\s\S]*?)(?=^## )/m.exec(readme)?.[1] ?? ''
const policy = /```policy\n([\s\S]*?)```/.exec(chapter)?.[1] ?? ''
const testFile = /```ts\n([\s\S]*?)```/.exec(chapter)?.[1] ?? ''

const project = mkdtempSync(join(tmpdir(), 'portcullis-readme-'))
afterAll(() => rmSync(project, { recursive: true, force: true }))

async function run(cmd: string[], timeoutMs: number): Promise<{ code: number; out: string }> {
  const proc = Bun.spawn(cmd, { cwd: project, stdout: 'pipe', stderr: 'pipe', env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' } })
  const timer = setTimeout(() => proc.kill(), timeoutMs)
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  clearTimeout(timer)
  return { code, out: out + err }
}

const bunTest = () => run([BUN, 'test'], 60_000)

test('the chapter has a policy and a test', () => {
  expect(policy).toContain('match GET /api/v1/orders/{id:int}')
  expect(testFile).toContain("from 'portcullis/testing'")
})

test(
  'copied into a new project, the README example passes; broken, it fails at the policy line',
  async () => {
    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify({ name: 'my-gateway', private: true, dependencies: { portcullis: `file:${ROOT}` } }, null, 2),
    )
    mkdirSync(join(project, 'policies'))
    writeFileSync(join(project, 'policies/api.policy'), policy)
    writeFileSync(join(project, 'policies/api.test.ts'), testFile)

    // As the README says: install by path. Where no package can be fetched (an offline machine
    // with an empty cache), a link in node_modules stands in for the install.
    const install = await run([BUN, 'install', '--prefer-offline'], 90_000)
    if (install.code !== 0) {
      console.warn(`bun install failed offline (${install.out.trim().split('\n').pop()}); linking node_modules/portcullis to the checkout instead`)
      rmSync(join(project, 'node_modules'), { recursive: true, force: true })
      mkdirSync(join(project, 'node_modules'))
      symlinkSync(ROOT, join(project, 'node_modules/portcullis'), 'dir')
    }

    const ok = await bunTest()
    expect(ok.out).toContain('3 pass')
    expect(ok.code).toBe(0)

    // A typo: the load fails with the diagnostic at the line and column of the typo.
    writeFileSync(join(project, 'policies/api.policy'), policy.replace('  throttle 20/min', '  throtle 20/min'))
    const typo = await bunTest()
    expect(typo.code).not.toBe(0)
    expect(typo.out).toContain('policies/api.policy:12:3')

    // A changed rule: the throttle assertion fails, and its message names the route's line.
    writeFileSync(join(project, 'policies/api.policy'), policy.replace('throttle 20/min', 'throttle 30/min'))
    const changed = await bunTest()
    expect(changed.code).not.toBe(0)
    expect(changed.out).toContain('1 fail')
    expect(changed.out).toContain('route GET /api/v1/orders/{id:int}')
    expect(changed.out).toContain('policies/api.policy:10:11')
  },
  { timeout: 180_000 },
)
