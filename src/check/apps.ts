// App blocks beyond their fields: secrets that exist, rotation windows that make sense, a
// public key that parses.
import { createPublicKey } from 'node:crypto'
import type { DiagnosticBag } from '../policy/diagnostics.ts'
import { readSecret, type Env } from '../policy/secrets.ts'
import type { Span } from '../policy/source.ts'
import type { AppConfig, RotatingSecret } from './blocks.ts'

const day = (ms: number) => new Date(ms).toISOString().replace('T00:00:00.000Z', '').replace('.000Z', 'Z')

function checkWindows(name: string, what: string, list: RotatingSecret[], bag: DiagnosticBag, now: number): void {
  for (const s of list) {
    if (s.until !== null && s.until <= now)
      bag.error('window-ended', `this ${what} of app '${name}' stopped being accepted on ${day(s.until)}`, s.span, {
        message: 'remove it, or move its `until` later',
      })
  }
  if (list.length === 2) {
    const [a, b] = [...list].sort((x, y) => (x.from ?? -Infinity) - (y.from ?? -Infinity))
    // Sorted by start: a gap is the first one ending before the second begins.
    if (a!.until !== null && b!.from !== null && b!.from > a!.until)
      bag.error('window-gap', `app '${name}' has no valid ${what} between ${day(a!.until)} and ${day(b!.from)}`, b!.span, {
        message: 'the previous one ends here',
        span: a!.span,
      })
  }
}

export function checkApp(name: string, app: AppConfig & { span: Span }, bag: DiagnosticBag, env: Env, now: number): void {
  for (const s of [...app.secrets, ...app.apiKeys]) readSecret(s.ref, env, bag)
  checkWindows(name, 'secret', app.secrets, bag, now)
  checkWindows(name, 'api-key', app.apiKeys, bag, now)
  if (app.publicKey) {
    const pem = readSecret(app.publicKey, env, bag)
    if (pem !== undefined) {
      try {
        const k = createPublicKey(pem)
        if (!['ed25519', 'rsa', 'rsa-pss', 'ec'].includes(k.asymmetricKeyType ?? ''))
          bag.error('bad-key', `app '${name}': public keys may be Ed25519, RSA or EC, not ${k.asymmetricKeyType}`, app.publicKey.span)
      } catch (err) {
        bag.error('bad-key', `app '${name}': the public key is not a PEM public key (${(err as Error).message})`, app.publicKey.span)
      }
    }
  }
}
