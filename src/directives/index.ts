// The directive registry: one explicit array, in the order the README table shows.
import type { AnyDirective } from './define.ts'
import allowIp from './allow-ip.ts'
import denyIp from './deny-ip.ts'
import limitBody from './limit-body.ts'
import status from './status.ts'
import rewritePath from './rewrite-path.ts'
import stripPrefix from './strip-prefix.ts'
import setHeader from './set-header.ts'
import removeHeader from './remove-header.ts'
import setQuery from './set-query.ts'
import removeQuery from './remove-query.ts'
import proxy from './proxy.ts'
import respond from './respond.ts'
import setResponseHeader from './set-response-header.ts'
import removeResponseHeader from './remove-response-header.ts'
import requireHmac from './require-hmac.ts'
import requireJwt from './require-jwt.ts'
import requireKey from './require-key.ts'
import requireScope from './require-scope.ts'
import requireClaim from './require-claim.ts'
import requireMtls from './require-mtls.ts'
import allowApp from './allow-app.ts'
import throttle from './throttle.ts'
import quota from './quota.ts'
import onStoreFailure from './on-store-failure.ts'
import allowGroup from './allow-group.ts'
import { orAlternatives } from './require-common.ts'

// `require A or B`: the methods an `or` may name.
const requireMethods = [requireHmac, requireJwt, requireKey, requireMtls]
orAlternatives(requireMethods)

export const directives: readonly AnyDirective[] = Object.freeze([
  ...requireMethods,
  requireScope,
  requireClaim,
  allowApp,
  allowGroup,
  allowIp,
  denyIp,
  limitBody,
  throttle,
  quota,
  onStoreFailure,
  status,
  rewritePath,
  stripPrefix,
  setHeader,
  removeHeader,
  setQuery,
  removeQuery,
  proxy,
  respond,
  setResponseHeader,
  removeResponseHeader,
])

// Directives of the language reference that this version does not run yet: the
// checker names them as such instead of calling them unknown.
export const notYetAvailable: readonly string[] = Object.freeze([
  'require session',
  'cors',
  'forward user',
  'decrypt request',
  'login',
  'refresh token',
  'logout',
  'token alive',
  'sign response',
  'encrypt response',
  'cache response',
  'log to',
])

const byName = new Map(directives.map((d) => [d.name, d]))

// The longest registered name that the statement's leading words spell.
export function findDirective(words: readonly string[]): { def: AnyDirective; length: number } | undefined {
  for (let n = Math.min(3, words.length); n >= 1; n--) {
    const def = byName.get(words.slice(0, n).join(' '))
    if (def) return { def, length: n }
  }
  return undefined
}
