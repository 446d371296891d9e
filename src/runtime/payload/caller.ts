// The app a payload directive (`encrypt response`, `decrypt request`, `sign response`) works for:
// the checker made sure the route binds one, but a `require jwt` token may name no app, and an
// app's keys are known only at run time (store apps). Refusals are 403s, given before the
// upstream is reached.
import type { RequestContext } from '../context.ts'
import { GatewayError } from '../gateway-error.ts'
import type { App } from '../identity.ts'
import { newestSecret } from './keys.ts'
import { algorithmFor } from './jwe.ts'

export function callerApp(ctx: RequestContext, what: string): App {
  const app = ctx.identity?.app
  if (!app) throw new GatewayError('forbidden', `'${what}' needs a caller identified as an app; this caller is not one`)
  return app
}

// The app's key id and a secret valid now: what the derived keys need.
export function withSecret(app: App, what: string, now: number): App & { key: string } {
  if (app.key === null) throw new GatewayError('forbidden', `'${what}' needs the app's key id, and the app '${app.name}' has no \`key\``)
  if (newestSecret(app, now) === null)
    throw new GatewayError('forbidden', `'${what}' derives its key from the app's secret, and the app '${app.name}' has no secret valid now`)
  return app as App & { key: string }
}

// A public key that can be encrypted to.
export function encryptionKeyOf(app: App, what: string): NonNullable<App['publicKey']> {
  const k = app.publicKey
  if (k === null) throw new GatewayError('forbidden', `'${what}' encrypts to the app's public-key, and the app '${app.name}' has none`)
  if (algorithmFor(k) === null)
    throw new GatewayError(
      'forbidden',
      `'${what}': the app '${app.name}' has a ${k.asymmetricKeyType} public-key, which cannot encrypt (RSA or EC P-256/384/521 or X25519 can)`,
    )
  return k
}
