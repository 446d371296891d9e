// `gateway explain DIR "METHOD /path[?query]" [-H "Name: value"]… [--as APP] [--body @file|TEXT]
// [--ip ADDR] [--repeat N] [--json]`: which route a request takes and what each directive
// decides, offline. Every upstream target is pointed at a local mock (200 `{}`), so nothing real
// is contacted; the output shows what the upstream would have received.
import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { commandArgs } from './command-args.ts'
import type { Explainer, ExplainInput, ExplainOutcome } from '../testing/explain.ts'

export const USAGE =
  'usage: gateway explain DIR "METHOD /path[?query]" [-H "Name: value"]... [--as APP] [--body @file|TEXT] [--ip ADDR] [--repeat N] [--json]'

class Usage extends Error {}

interface Invocation extends ExplainInput {
  dir: string
  repeat: number
  json: boolean
}

const METHOD = /^[A-Za-z]+$/
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const MAX_REPEAT = 10_000

function parse(argv: string[]): Invocation {
  const parsed = commandArgs('explain', argv, {
    header: { type: 'string', short: 'H', multiple: true },
    as: { type: 'string' },
    body: { type: 'string' },
    ip: { type: 'string' },
    repeat: { type: 'string' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  })
  if (typeof parsed === 'string') throw new Usage(parsed)
  const { values: v, positionals } = parsed
  if (v.help) throw new Usage(USAGE)
  if (positionals.length !== 2) throw new Usage(`gateway explain: expected DIR and "METHOD /path", got ${positionals.length} argument(s); ${USAGE}`)
  const [dir, line] = positionals as [string, string]
  const m = /^\s*(\S+)\s+(\S+)\s*$/.exec(line)
  if (!m || !METHOD.test(m[1]!)) throw new Usage(`gateway explain: '${line}' is not a request line like "GET /orders/1?x=1"`)
  const target = m[2]!
  if (!target.startsWith('/')) throw new Usage(`gateway explain: the request target '${target}' must start with / (a path, and ?query)`)
  const headers: [string, string][] = []
  for (const h of v.header ?? []) {
    const colon = h.indexOf(':')
    const name = colon === -1 ? '' : h.slice(0, colon).trim()
    if (!HEADER_NAME.test(name)) throw new Usage(`gateway explain: -H '${h}' is not a header like "Name: value"`)
    headers.push([name, h.slice(colon + 1).trim()])
  }
  const ip = v.ip ?? '127.0.0.1'
  if (isIP(ip) === 0) throw new Usage(`gateway explain: --ip '${ip}' is not an IP address`)
  let repeat = 1
  if (v.repeat !== undefined) {
    repeat = Number(v.repeat)
    if (!/^\d+$/.test(v.repeat) || repeat < 1 || repeat > MAX_REPEAT)
      throw new Usage(`gateway explain: --repeat takes a whole number from 1 to ${MAX_REPEAT}, found '${v.repeat}'`)
  }
  let body: Uint8Array | null = null
  if (v.body !== undefined) {
    if (v.body.startsWith('@')) {
      try {
        body = new Uint8Array(readFileSync(v.body.slice(1)))
      } catch (err) {
        throw new Usage(
          `gateway explain: cannot read --body file '${v.body.slice(1)}': ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        )
      }
    } else body = new TextEncoder().encode(v.body)
  }
  if (v.as === '') throw new Usage('gateway explain: --as needs an app name')
  return { dir, method: m[1]!.toUpperCase(), target, headers, as: v.as ?? null, body, ip, repeat, json: v.json === true }
}

// Loaded once the arguments are good: a usage error answers at once.
const load = async () => ({
  ...(await import('../policy/load.ts')),
  ...(await import('../policy/diagnostics.ts')),
  ...(await import('../runtime/decisions.ts')),
  ...(await import('../testing/explain.ts')),
})

const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`

// Written whole before main returns: a caller may exit right after, and a pipe takes time.
function write(stream: NodeJS.WriteStream, text: string): Promise<void> {
  return new Promise((done) => stream.write(text, () => done()))
}

export async function main(argv: string[]): Promise<number> {
  let stdout = ''
  let stderr = ''
  const code = await run(
    argv,
    (s) => void (stdout += s),
    (s) => void (stderr += s),
  )
  if (stdout) await write(process.stdout, stdout)
  if (stderr) await write(process.stderr, stderr)
  return code
}

async function run(argv: string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  let inv: Invocation
  try {
    inv = parse(argv)
  } catch (e) {
    if (e instanceof Usage && e.message === USAGE) {
      out(`${USAGE}\n`)
      return 0
    }
    err(`${(e as Error).message}\n`)
    return 2
  }
  const lib = await load()
  let explainer: Explainer | undefined
  try {
    const opened = await lib.openExplainer(inv.dir, { callers: inv.as !== null })
    if ('diagnostics' in opened) {
      err(lib.renderDiagnostics(opened.diagnostics))
      return 1
    }
    explainer = opened
    const earlier = new Map<string, number>()
    let last: ExplainOutcome | undefined
    for (let i = 1; i <= inv.repeat; i++) {
      last = await explainer.run(inv, Date.now())
      if (i < inv.repeat) {
        const k = `${last.trace.status}${last.trace.gatewayError ? ` ${last.trace.gatewayError}` : ''}`
        earlier.set(k, (earlier.get(k) ?? 0) + 1)
      }
    }
    const trace = last!.trace
    if (inv.json) {
      const answer = {
        status: trace.status,
        headers: last!.headers,
        body: last!.body.length > lib.BODY_SHOWN ? `${last!.body.slice(0, lib.BODY_SHOWN)}…` : last!.body,
      }
      const repeated = inv.repeat > 1 ? { repeat: inv.repeat, earlier: Object.fromEntries(earlier) } : {}
      out(`${JSON.stringify({ ...repeated, trace, answer }, null, 2)}\n`)
    } else {
      if (inv.repeat > 1) {
        const seen = [...earlier].map(([k, n]) => `${n}× ${k}`).join(', ')
        out(`request ${inv.repeat} of ${inv.repeat} (the ${plural(inv.repeat - 1, 'earlier one')}: ${seen})\n`)
      }
      out(lib.renderTrace(trace))
    }
    return 0
  } catch (e) {
    if (e instanceof lib.PolicyDirError || e instanceof Usage) err(`${e.message}\n`)
    else err(`gateway explain: ${(e as Error).message.split('\n')[0]}\n`)
    return 2
  } finally {
    await explainer?.close()
  }
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)))
