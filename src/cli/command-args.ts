// The arguments of a command with flags of its own (explain, openapi, simulate): node's
// parseArgs, strict, with its error cut to the first sentence (node's messages run on with
// advice about `--`) and named after the command.
import { parseArgs, type ParseArgsConfig } from 'node:util'

type Options = NonNullable<ParseArgsConfig['options']>

export function commandArgs<O extends Options>(command: string, argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true })
  } catch (err) {
    return `gateway ${command}: ${(err as Error).message.split('\n')[0]!.split('. ')[0]!.replace(/\.$/, '')}`
  }
}

// Misuse: one line on stderr, exit code 2.
export function usageExit(message: string): number {
  process.stderr.write(`${message}\n`)
  return 2
}
