// For the bench's own servers: with --exit-on-stdin-close they die with the bench
// (the bench never writes to their stdin; EOF means it is gone).

export function exitWithParent(stop: () => void): void {
  if (!process.argv.includes('--exit-on-stdin-close')) return
  void (async () => {
    for await (const _ of Bun.stdin.stream()) {
      // nothing is ever sent
    }
    stop()
    process.exit(0)
  })()
}

/** The value after `--name` on the command line, or an error naming the script. */
export function argValue(name: string, script: string): string {
  const i = process.argv.indexOf(`--${name}`)
  const value = i < 0 ? undefined : process.argv[i + 1]
  if (!value) throw new Error(`${script}: --${name} is required`)
  return value
}
