// The `gateway` command line: check, routes, --help, bad flags (exit 2, one line),
// environment variables (flags win), start-up on a broken program (exit 1, never listening).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { BUN, ROOT, policyDir, removeDir, runCli, startUpstream, type Upstream, freePort } from '../helpers/gateway.ts'

let up: Upstream
let good: string
let bad: string
let certFile: string

beforeAll(() => {
  up = startUpstream()
  good = policyDir({
    'main.policy': `upstream api { target ${up.url} }
match GET /api/{id} { rewrite path /items/{id}; proxy api }
`,
    'sub/health.policy': 'match GET,HEAD /healthz { respond 200 json "{\\"ok\\":true}" }\n',
  })
  bad = policyDir({ 'main.policy': 'match GET /a {\n  respond 200 text "ok"\n}\nmatch GET /b {\n  proxy nowhere\n}\n' })
  certFile = join(good, 'cert.pem')
  writeFileSync(certFile, 'not really a certificate\n')
})
afterAll(() => {
  up?.stop()
  removeDir(good)
  removeDir(bad)
})

// Starts the gateway with exactly these arguments and environment (no harness defaults),
// waits for the readiness line on stdout, stops it with SIGTERM and returns what it printed.
async function serveOnce(args: string[], env: Record<string, string>, probe?: (url: string) => Promise<void>) {
  const proc = Bun.spawn([BUN, join(ROOT, 'src/cli/main.ts'), ...args], {
    cwd: ROOT,
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    env: { ...process.env, GATEWAY_LOG_FORMAT: 'json', ...env },
  })
  const reader = proc.stdout.getReader()
  let out = ''
  const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000)
  try {
    while (!/listening on http:\/\/\S+\n/.test(out)) {
      const { value, done } = await reader.read()
      if (done) break
      out += new TextDecoder().decode(value)
    }
    const url = /listening on (http:\/\/\S+)/.exec(out)?.[1]
    if (url && probe) await probe(url)
    return { url, out }
  } finally {
    proc.kill('SIGTERM')
    await proc.exited
    clearTimeout(timer)
  }
}

describe('check and routes', () => {
  test('check DIR exits 0 on a good program', async () => {
    const r = await runCli(['check', good])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(`${good}: ok, 2 routes\n`)
  })

  test('check DIR exits 1 with file:LINE:COL diagnostics on a bad program', async () => {
    const r = await runCli(['check', bad])
    expect(r.code).toBe(1)
    expect(r.stdout).toBe('')
    expect(r.stderr).toContain(`${join(bad, 'main.policy')}:5:9: error: unknown upstream 'nowhere'`)
    expect(r.stderr).toContain('5 |   proxy nowhere')
    expect(r.stderr).toContain('  |         ^^^^^^^')
    expect(r.stderr).not.toMatch(/\n\s+at /)
  })

  test('routes DIR prints the compiled route table', async () => {
    const r = await runCli(['routes', good])
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(
      [
        'METHOD    PATTERN    SOURCE        ACC RW RSP LOG  TERMINAL',
        'GET       /api/{id}  main:2          -  1   -   -  proxy api',
        'GET,HEAD  /healthz   sub/health:1    -  -   -   -  respond',
        '',
      ].join('\n'),
    )
  })

  test('routes --wide DIR prints every directive of every stage', async () => {
    const r = await runCli(['routes', '--wide', good])
    expect(r.code).toBe(0)
    const lines = r.stdout.trimEnd().split('\n')
    expect(lines).toHaveLength(3)
    expect(lines[0]!.split(/\s{2,}/)).toEqual(['METHOD', 'HOST', 'PATTERN', 'STAGES', 'TERMINAL', 'SOURCE'])
    expect(lines[1]!.split(/\s{2,}/)).toEqual([
      'GET',
      '*',
      '/api/{id}',
      'access: -; rewrite: rewrite path; response: -; log: -',
      'proxy api',
      `${join(good, 'main.policy')}:2:11`,
    ])
    expect(lines[2]!.split(/\s{2,}/)).toEqual([
      'GET,HEAD',
      '*',
      '/healthz',
      'access: -; rewrite: -; response: -; log: -',
      'respond',
      `${join(good, 'sub/health.policy')}:1:16`,
    ])
  })

  test('routes DIR exits 1 on a bad program', async () => {
    const r = await runCli(['routes', bad])
    expect(r.code).toBe(1)
    expect(r.stdout).toBe('')
    expect(r.stderr).toContain(':5:9: error:')
  })

  test('--help prints usage and exits 0', async () => {
    const r = await runCli(['--help'])
    expect(r.code).toBe(0)
    const text = r.stdout + r.stderr
    expect(text).toStartWith('usage:')
    for (const word of ['check DIR', 'routes DIR', '--policies', '--port', '--admin-token', '--log-format']) expect(text).toContain(word)
  })
})

describe('bad flags: exit 2, one line on stderr, no stack trace', () => {
  const cases: [string, string[], Record<string, string>, RegExp][] = [
    ['unknown flag', ['--frobnicate'], {}, /frobnicate/],
    ['--port abc', ['--port', 'abc'], {}, /--port/],
    ['--port 70000', ['--port', '70000'], {}, /--port/],
    ['--admin-port -1', ['--admin-port', '-1'], {}, /admin-port/],
    ['--port without a value', ['--port'], {}, /--port/],
    ['--tls-port abc', ['--tls-port', 'abc'], {}, /--tls-port/],
    ['--client-ca missing file', ['--client-ca', '/nonexistent/ca.pem'], {}, /--client-ca/],
    ['--workers 0', ['--workers', '0'], {}, /--workers/],
    ['--log-format xml', ['--log-format', 'xml'], {}, /--log-format/],
    ['--trust-proxy nonsense', ['--trust-proxy', 'nonsense'], {}, /--trust-proxy.*nonsense/],
    ['--tls-cert missing file', ['--tls-cert', '/nonexistent/cert.pem', '--tls-key', '/nonexistent/key.pem'], {}, /--tls-cert/],
    ['--tls-cert without --tls-key', ['--tls-cert', 'CERT'], {}, /--tls-cert.*--tls-key|--tls-key.*--tls-cert/],
    ['--tls-cert/--tls-key not PEM', ['--tls-cert', 'CERT', '--tls-key', 'CERT', '--tls-port', '0'], {}, /PEM|cert|key/i],
    ['--host not an address', ['--host', '999.1.1.1'], {}, /999\.1\.1\.1/],
    ['--redis http://x', ['--redis', 'http://x'], {}, /--redis/],
    ['--admin-token too short', ['--admin-token', 'short'], {}, /--admin-token/],
    ['a non-existent policy dir', ['--policies', '/nonexistent/policies-dir'], {}, /\/nonexistent\/policies-dir/],
    ['check on a non-existent dir', ['check', '/nonexistent/policies-dir'], {}, /\/nonexistent\/policies-dir/],
    ['unknown command', ['frob'], {}, /frob/],
    ['a stray argument', ['check', 'a', 'b'], {}, /'b'/],
    ['GATEWAY_PORT=abc', [], { GATEWAY_PORT: 'abc' }, /port/],
    ['GATEWAY_LOG_FORMAT=xml', [], { GATEWAY_LOG_FORMAT: 'xml' }, /log-format/],
    ['REDIS_URL=http://x', [], { REDIS_URL: 'http://x' }, /redis/],
  ]
  for (const [name, args, env, message] of cases) {
    test(name, async () => {
      const argv = args.map((a) => (a === 'CERT' ? certFile : a))
      // A valid policy dir and free ports, so only the flag under test can be at fault.
      // They come first: with a repeated flag the last one wins.
      const base = argv[0] === 'check' || argv.includes('--policies') ? [] : ['--policies', good, '--host', '127.0.0.1', '--admin-port', '0']
      if (base.length && !env.GATEWAY_PORT) base.push('--port', '0')
      const r = await runCli([...base, ...argv], env)
      expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 2, stdout: '' })
      expect(r.stderr.endsWith('\n')).toBe(true)
      const lines = r.stderr.trimEnd().split('\n')
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(message)
      expect(r.stderr).not.toMatch(/\bat .*\.ts:\d+|Error:|ZodError|\[object/)
    })
  }
})

describe('serving', () => {
  test('the readiness line `listening on http://HOST:PORT` is on stdout', async () => {
    const port = freePort()
    const { url, out } = await serveOnce(['--policies', good, '--host', '127.0.0.1', '--port', String(port), '--admin-port', '0'], {}, async (u) => {
      expect((await fetch(`${u}/healthz`)).status).toBe(200)
    })
    expect(url).toBe(`http://127.0.0.1:${port}`)
    expect(out).toContain(`listening on http://127.0.0.1:${port}\n`)
  })

  test('environment variables configure the gateway', async () => {
    const port = freePort()
    const adminPort = freePort()
    const { url } = await serveOnce(
      [],
      {
        GATEWAY_POLICIES: good,
        GATEWAY_HOST: '127.0.0.1',
        GATEWAY_PORT: String(port),
        GATEWAY_ADMIN_PORT: String(adminPort),
        GATEWAY_WATCH: 'false',
        GATEWAY_ADMIN_TOKEN: 'env-admin-token-0123456789',
      },
      async (u) => {
        expect(await (await fetch(`${u}/healthz`)).json()).toEqual({ ok: true })
        expect((await fetch(`http://127.0.0.1:${adminPort}/healthz`)).status).toBe(200)
        const reload = await fetch(`http://127.0.0.1:${adminPort}/reload`, {
          method: 'POST',
          headers: { authorization: 'Bearer env-admin-token-0123456789' },
        })
        expect(reload.status).toBe(200)
      },
    )
    expect(url).toBe(`http://127.0.0.1:${port}`)
  })

  test('flags win over environment variables', async () => {
    const envPort = freePort()
    const flagPort = freePort()
    // The environment names a broken program and another port; the flags name the good ones.
    const { url } = await serveOnce(['--port', String(flagPort), '--policies', good, '--admin-port', '0'], {
      GATEWAY_POLICIES: bad,
      GATEWAY_HOST: '127.0.0.1',
      GATEWAY_PORT: String(envPort),
    })
    expect(url).toBe(`http://127.0.0.1:${flagPort}`)
    // A flag also overrides an invalid environment value.
    const r2 = await serveOnce(['--log-format', 'json', '--policies', good, '--host', '127.0.0.1', '--port', '0', '--admin-port', '0'], {
      GATEWAY_LOG_FORMAT: 'xml',
    })
    expect(r2.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
  })

  test('starting on a broken program prints diagnostics, exits 1 and never listens', async () => {
    const r = await runCli(['--policies', bad, '--host', '127.0.0.1', '--port', '0', '--admin-port', '0'])
    expect(r.code).toBe(1)
    expect(r.stdout).not.toContain('listening on')
    expect(r.stderr).not.toContain('admin API on')
    expect(r.stderr).toContain(`${join(bad, 'main.policy')}:5:9: error: unknown upstream 'nowhere'`)
    expect(r.stderr).not.toMatch(/\n\s+at /)
  })

  test('a port already in use is one line and exit 2', async () => {
    const busy = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response() })
    try {
      const r = await runCli(['--policies', good, '--host', '127.0.0.1', '--port', String(busy.port), '--admin-port', '0'])
      expect(r.code).toBe(2)
      expect(r.stdout).not.toContain('listening on')
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1)
      expect(r.stderr).toContain(`127.0.0.1:${busy.port}`)
    } finally {
      busy.stop(true)
    }
  })
})
