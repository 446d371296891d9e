// Header files: per-request credentials for the load generators (bench/header-cycle.lua for wrk,
// bench/load.ts --header-file). One request per line; its headers as `Name: value`, separated
// by a tab. The generators read the file before the clock starts and cycle through the lines.
import { readFileSync } from 'node:fs'

export type HeaderLine = readonly (readonly [string, string])[]

export function formatHeaderLine(headers: HeaderLine): string {
  for (const [name, value] of headers) {
    if (/[\t\r\n:]/.test(name) || /[\t\r\n]/.test(value)) throw new Error(`header ${name} cannot go into a header file`)
  }
  return headers.map(([name, value]) => `${name}: ${value}`).join('\t')
}

export function parseHeaderLine(line: string): [string, string][] {
  return line
    .split('\t')
    .filter((field) => field.includes(':'))
    .map((field) => {
      const colon = field.indexOf(':')
      return [field.slice(0, colon).trim(), field.slice(colon + 1).trim()]
    })
}

export function readHeaderFile(path: string): [string, string][][] {
  const lines = readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
  if (lines.length === 0) throw new Error(`header file ${path} has no lines`)
  return lines.map(parseHeaderLine)
}
