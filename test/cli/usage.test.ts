// `gateway --version`, `gateway help`, misuse of the new flags, and `bun test` outside test/.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BUN, ROOT, removeDir, runCli } from '../helpers/gateway.ts'
import { expectUsageError } from '../helpers/cli.ts'

// Each test runs the CLI, some several times: a process start is up to a few seconds on a busy machine.
setDefaultTimeout(20_000)

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
const args = readFileSync(join(ROOT, 'src/cli/args.ts'), 'utf8')

describe('version', () => {
  test.each([[['--version']], [['version']], [['check', 'policies', '--version']]])('gateway %p prints portcullis X.Y.Z', async (argv) => {
    expect(pkg.version).toMatch(/^\d+\.\d+\.\d+/)
    const r = await runCli(argv)
    expect(r).toEqual({ code: 0, stdout: `portcullis ${pkg.version}\n`, stderr: '' })
  })

  test('it needs no valid options: a bad environment value does not stop it', async () => {
    const r = await runCli(['--version'], { GATEWAY_PORT: 'abc' })
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(`portcullis ${pkg.version}\n`)
  })
})

describe('help', () => {
  let text: string
  beforeAll(async () => {
    const r = await runCli(['help'])
    expect(r.code).toBe(0)
    expect(r.stderr).toBe('')
    text = r.stdout
  })

  test('--help, -h and help print the same usage, exit 0', async () => {
    expect(text).toStartWith('usage: gateway')
    for (const argv of [['--help'], ['-h'], ['routes', 'policies', '--help']]) {
      expect(await runCli(argv, { GATEWAY_PORT: 'abc' })).toEqual({ code: 0, stdout: text, stderr: '' })
    }
  })

  test('every command has its line', () => {
    for (const command of [
      'serve',
      'check DIR|FILE',
      'routes DIR|FILE',
      'directives',
      'explain DIR',
      'openapi DIR',
      'simulate DIR TRACE',
      'version',
      'help',
    ]) {
      expect(text).toMatch(new RegExp(`^  ${command.replace(/[|]/g, '\\|')}\\s+\\S`, 'm'))
    }
  })

  test('every flag the parser knows has its line, with its environment variable', () => {
    const spec = args.slice(args.indexOf('const flagSpec'), args.indexOf('} as const'))
    const flags = [...spec.matchAll(/^\s+'?([a-z-]+)'?: \{ type/gm)].map((m) => m[1]!)
    expect(flags.length).toBeGreaterThan(20)
    for (const flag of flags) expect(text).toMatch(new RegExp(`^  .*--${flag}\\b`, 'm'))
    // Each flag's environment variable is on the flag's line.
    const env = args.slice(args.indexOf('const envOf'), args.indexOf('const port ='))
    const pairs = [...env.matchAll(/^\s+'?([a-z-]+)'?: '([A-Z_]+)',$/gm)].map((m) => [m[1]!, m[2]!] as const)
    expect(pairs.length).toBeGreaterThan(15)
    for (const [flag, name] of pairs) expect(text).toMatch(new RegExp(`^  --${flag}\\b.*\\b${name}\\b`, 'm'))
  })

  test('it fits 100 columns', () => {
    for (const line of text.split('\n')) expect([...line].length).toBeLessThanOrEqual(100)
  })
})

describe('misuse: one line on stderr, exit 2', () => {
  const cases: [string, string[], RegExp][] = [
    ['an unknown command, with a hint', ['frob'], /^unknown command 'frob' \(gateway help lists the commands and flags\)$/m],
    ['--wide with check', ['check', '--wide', 'policies'], /--wide goes with gateway routes only/],
    ['--json with serve', ['--json', '--port', '0'], /--json goes with gateway check and gateway routes only/],
    ['--json with directives', ['directives', '--json'], /--json goes with gateway check and gateway routes only/],
    ['--wide with --json', ['routes', '--wide', '--json', 'policies'], /--wide and --json do not go together/],
    ['an argument to version', ['version', 'x'], /unexpected argument 'x'/],
    ['an argument to help', ['help', 'x'], /unexpected argument 'x'/],
    ['two paths to routes', ['routes', 'policies', 'policies'], /unexpected argument 'policies'/],
  ]
  test.each(cases)('%s', async (_name, argv, message) => {
    expectUsageError(await runCli(argv), message)
  })
})

// With a test root in bunfig.toml, `bun test my.test.ts` outside test/ found nothing.
describe('bun test outside test/', () => {
  let scratch: string
  beforeAll(() => {
    scratch = mkdtempSync(join(tmpdir(), 'portcullis-bunfig-'))
    copyFileSync(join(ROOT, 'bunfig.toml'), join(scratch, 'bunfig.toml'))
    writeFileSync(join(scratch, 'my.test.ts'), "import { expect, test } from 'bun:test'\ntest('mine runs', () => expect(1 + 1).toBe(2))\n")
  })
  afterAll(() => removeDir(scratch))

  test("the project's bunfig.toml lets `bun test my.test.ts` and `bun test` find a test beside it", async () => {
    for (const argv of [['test', 'my.test.ts'], ['test']]) {
      const proc = Bun.spawn([BUN, ...argv], { cwd: scratch, stdout: 'pipe', stderr: 'pipe', stdin: 'ignore' })
      const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000)
      const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
      clearTimeout(timer)
      expect(out + err).toContain('(pass) mine runs')
      expect(code).toBe(0)
    }
  })

  test("the project's own tests are under test/, and the example policies' kit tests beside them in policies/; none elsewhere", () => {
    // Bun's test file names, looked for everywhere but node_modules and hidden directories.
    const testName = /(\.test|_test|\.spec|_spec)\.[cm]?[jt]sx?$/
    const outside: string[] = []
    const walk = (dir: string) => {
      for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
        if (e.name.startsWith('.') || e.name === 'node_modules') continue
        const path = dir ? `${dir}/${e.name}` : e.name
        if (e.isDirectory()) {
          if (path !== 'test' && path !== 'policies') walk(path)
        } else if (testName.test(e.name)) outside.push(path)
      }
    }
    walk('')
    expect(outside).toEqual([])
    // The timeout stays.
    expect(readFileSync(join(ROOT, 'bunfig.toml'), 'utf8')).toMatch(/^\[test\][^[]*^timeout = \d+$/m)
  })
})
