// `gateway openapi DIR [--server URL] [--title T] [--api-version V]`: the routes of DIR as an
// OpenAPI 3.1 document (JSON) on stdout. Exit 0; 1 with the diagnostics of `gateway check` when
// the policies do not check; 2 on misuse.
import { commandArgs, usageExit as usage } from './command-args.ts'
import { buildOpenApi } from '../compile/build-program.ts'
import { renderDiagnostics } from '../policy/diagnostics.ts'
import { PolicyDirError } from '../policy/load.ts'

export const OPENAPI_USAGE = 'usage: gateway openapi DIR [--server URL] [--title T] [--api-version V]'

export async function main(argv: string[]): Promise<number> {
  const parsed = commandArgs('openapi', argv, {
    server: { type: 'string' },
    title: { type: 'string' },
    'api-version': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  })
  if (typeof parsed === 'string') return usage(parsed)
  const { values, positionals } = parsed
  if (values.help) {
    process.stdout.write(`${OPENAPI_USAGE}\n`)
    return 0
  }
  if (positionals.length === 0) return usage(`gateway openapi: which policy directory? ${OPENAPI_USAGE}`)
  if (positionals.length > 1) return usage(`gateway openapi: unexpected argument '${positionals[1]}'`)
  const server = values.server
  if (server !== undefined) {
    const url = URL.canParse(server) ? new URL(server) : null
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.search || url.hash || url.username)
      return usage(`gateway openapi: --server must be an http(s) URL like https://api.example.com (got '${server}')`)
  }
  for (const flag of ['title', 'api-version'] as const)
    if (values[flag] !== undefined && values[flag].trim() === '') return usage(`gateway openapi: --${flag} must not be empty`)
  let result
  try {
    result = buildOpenApi(positionals[0]!, { server: server?.replace(/\/$/, ''), title: values.title, apiVersion: values['api-version'] })
  } catch (err) {
    if (err instanceof PolicyDirError) return usage(err.message)
    throw err
  }
  if ('diagnostics' in result) {
    process.stderr.write(renderDiagnostics(result.diagnostics))
    return 1
  }
  for (const note of result.notes) process.stderr.write(`note: ${note}\n`)
  process.stdout.write(`${JSON.stringify(result.document, null, 2)}\n`)
  return 0
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2))
