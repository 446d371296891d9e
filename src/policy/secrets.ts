// Secret references (`env NAME`, `file "path"`) → their values, from the build's environment.
import { readFileSync } from 'node:fs'
import type { SecretRef } from './cursor.ts'
import type { DiagnosticBag } from './diagnostics.ts'

export type Env = Readonly<Record<string, string | undefined>>

// The value, or undefined after reporting why there is none (when a bag is given).
export function readSecret(ref: SecretRef, env: Env, bag?: DiagnosticBag): string | undefined {
  if (ref.from === 'env') {
    const v = env[ref.name]
    if (v === undefined || v === '') bag?.error('missing-env', `environment variable ${ref.name} is not set`, ref.span)
    return v || undefined
  }
  try {
    const v = readFileSync(ref.path, 'utf8')
    // A secret file commonly ends with a new line that is not part of the secret.
    return v.replace(/\r?\n$/, '')
  } catch (err) {
    bag?.error('missing-file', `cannot read ${ref.path}: ${(err as Error).message}`, ref.span)
    return undefined
  }
}
