// Request-time helpers shared by the `require` directives: what an authenticator answers, the
// checks every identified app gets (its own `allow ip`), and binding the identity to the request.
import type { RequestContext } from './context.ts'
import { GatewayError } from './gateway-error.ts'
import type { App, AuthMethod, Identity, Lookup } from './identity.ts'

// null: no credential of this kind was presented (another `or` alternative may apply).
export type AuthOutcome = Identity | GatewayError | null
export type Authenticator = (ctx: RequestContext) => AuthOutcome | Promise<AuthOutcome>

export const unauthenticated = (detail: string, challenge?: string) =>
  new GatewayError('unauthenticated', detail, challenge ? { 'www-authenticate': challenge } : {})

export const storeDown = () => new GatewayError('store_unavailable', 'the gateway cannot check credentials now: its store does not answer')

// A looked-up app → an identity for it, or the error that ends the request. The same words
// for an unknown and a revoked credential: a caller learns nothing about which apps exist.
export function identify(ctx: RequestContext, found: Lookup, via: AuthMethod, what: string): Identity | GatewayError {
  if (found === 'unavailable') return storeDown()
  if (found === null) return unauthenticated(`the ${what} is not valid`)
  return appIdentity(ctx, found, via)
}

export function appIdentity(ctx: RequestContext, app: App, via: AuthMethod): Identity | GatewayError {
  if (app.allowIp && !app.allowIp(ctx.ip)) return new GatewayError('forbidden', `the app may not call from this address`)
  return { app, user: null, jwt: null, via }
}

// Several `require` lines must all pass and must agree on the app.
export function bind(ctx: RequestContext, id: Identity): GatewayError | undefined {
  const had = ctx.identity
  if (had === null) {
    ctx.identity = id
    return undefined
  }
  if (had.app && id.app && had.app !== id.app && had.app.name !== id.app.name) return unauthenticated('the credentials presented name different apps')
  had.app ??= id.app
  had.user ??= id.user
  had.jwt ??= id.jwt
  had.signature ??= id.signature
  return undefined
}
