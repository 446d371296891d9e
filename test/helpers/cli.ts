// What every `gateway` usage error looks like: exit 2, nothing on stdout, one line on stderr
// matching `message`, and no stack trace.
import { expect } from 'bun:test'

export function expectUsageError(r: { code: number; stdout: string; stderr: string }, message: RegExp): void {
  expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 2, stdout: '' })
  expect(r.stderr.endsWith('\n')).toBe(true)
  expect(r.stderr.trimEnd().split('\n')).toHaveLength(1)
  expect(r.stderr).toMatch(message)
  expect(r.stderr).not.toMatch(/\bat .*\.ts:\d+|Error:/)
}
