// The directive registry: one explicit array, in the order the README table shows.
import type { AnyDirective } from './define.ts'
import allowIp from './allow-ip.ts'
import cors from './cors.ts'
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
import cacheResponse from './cache-response.ts'
import decryptRequest from './decrypt-request.ts'
import encryptResponse from './encrypt-response.ts'
import signResponse from './sign-response.ts'
import requireHmac from './require-hmac.ts'
import requireJwt from './require-jwt.ts'
import requireKey from './require-key.ts'
import requireScope from './require-scope.ts'
import requireClaim from './require-claim.ts'
import requireMtls from './require-mtls.ts'
import requireSession from './require-session.ts'
import forwardUser from './forward-user.ts'
import login from './login.ts'
import refreshToken from './refresh-token.ts'
import logout from './logout.ts'
import tokenAlive from './token-alive.ts'
import allowApp from './allow-app.ts'
import throttle from './throttle.ts'
import quota from './quota.ts'
import onStoreFailure from './on-store-failure.ts'
import allowGroup from './allow-group.ts'
import logTo from './log-to.ts'
import trace from './trace.ts'
import scriptAccess from './script-access.ts'
import scriptRewrite from './script-rewrite.ts'
import scriptResponse from './script-response.ts'
import scriptLog from './script-log.ts'
import { orAlternatives } from './require-common.ts'

// `require A or B`: the methods an `or` may name.
const requireMethods = [requireHmac, requireJwt, requireKey, requireMtls, requireSession]
orAlternatives(requireMethods)

export const directives: readonly AnyDirective[] = Object.freeze([
  ...requireMethods,
  requireScope,
  requireClaim,
  allowApp,
  allowGroup,
  allowIp,
  denyIp,
  cors,
  limitBody,
  throttle,
  quota,
  onStoreFailure,
  status,
  scriptAccess,
  rewritePath,
  stripPrefix,
  setHeader,
  removeHeader,
  setQuery,
  removeQuery,
  forwardUser,
  decryptRequest,
  scriptRewrite,
  proxy,
  respond,
  login,
  refreshToken,
  logout,
  tokenAlive,
  setResponseHeader,
  removeResponseHeader,
  cacheResponse,
  encryptResponse,
  signResponse,
  scriptResponse,
  logTo,
  trace,
  scriptLog,
])

// Directives of the language reference that this version does not run yet: the
// checker names them as such instead of calling them unknown.
export const notYetAvailable: readonly string[] = Object.freeze([])

const byName = new Map(directives.map((d) => [d.name, d]))

// The longest registered name that the statement's leading words spell.
export function findDirective(words: readonly string[]): { def: AnyDirective; length: number } | undefined {
  for (let n = Math.min(3, words.length); n >= 1; n--) {
    const def = byName.get(words.slice(0, n).join(' '))
    if (def) return { def, length: n }
  }
  return undefined
}
