// Login sessions (`login`, `refresh token`, `logout`, `token alive`, `require session`): the
// tokens a login issues and what the store keeps of them. Both stores (sessions-memory.ts,
// sessions-redis.ts) follow these rules:
// - A login is a family: one user, its current refresh token, the access tokens it issued.
// - Tokens are opaque: base64url of 48 random bytes. The first 16 bytes name the family (every
//   token of a login shares them), the other 32 are secret. The store keeps only SHA-256
//   hashes: of the whole token, and of the family part for the family's key. A presented token
//   is looked up in one family record, one key (one Redis Cluster slot).
// - A refresh token is used once: refreshing issues a new pair and remembers the old refresh
//   token as used; presenting a used one again revokes the family (every token of the login).
//   Access tokens issued before a refresh stay valid until their own expiry.
// - Logout revokes the family of the access token presented (an expired one still ends it).
// - Per user (by a hash of its id) the store indexes its live families, so a single-sign-on
//   login revokes the user's older logins.
import { randomBytes } from 'node:crypto'

export interface SessionUser {
  readonly id: string
  readonly info: Readonly<Record<string, unknown>>
}

export interface SessionLifetimes {
  ttlMs: number // access tokens
  refreshMs: number // refresh tokens; the login lives as long as its current one
}

export interface TokenPair {
  accessToken: string
  refreshToken: string
  user: SessionUser
}

export interface ActiveSession {
  user: SessionUser
  expiresInMs: number // of the access token presented
}

// `unknown`: not a live refresh token (never issued, expired, its login revoked);
// `reused`: a refresh token that was used before: its login has just been revoked.
export type RefreshOutcome = TokenPair | 'unknown' | 'reused'

// Every call answers within the store's timeout or rejects with StoreUnavailable.
export interface SessionStore {
  // A new login for `user`; with `singleSignOn`, the user's older logins are revoked.
  login(user: SessionUser, life: SessionLifetimes, singleSignOn: boolean): Promise<TokenPair>
  // A live access token's user and time left; null for anything else. The memory store
  // answers at once (no promise).
  check(accessToken: string): ActiveSession | null | Promise<ActiveSession | null>
  refresh(refreshToken: string, life: SessionLifetimes): Promise<RefreshOutcome>
  // Revokes the login of `accessToken`; false when there was no such login.
  logout(accessToken: string): Promise<boolean>
}

// Used refresh tokens remembered per login (for reuse detection): the most recent ones.
export const MAX_USED = 32

const FAMILY_BYTES = 16
const SECRET_BYTES = 32
const TOKEN = /^[A-Za-z0-9_-]{64}$/ // base64url of 48 bytes, no padding

const hash = (bytes: string | Uint8Array) => new Bun.CryptoHasher('sha256').update(bytes).digest('base64url')

// What the store keeps of one token, and the key of its family.
export interface TokenRef {
  family: string // base64url SHA-256 of the token's family bytes
  hash: string // base64url SHA-256 of the token
}

// A presented token → its family and hash; null when it cannot be a session token.
export function tokenRef(token: string): TokenRef | null {
  if (!TOKEN.test(token)) return null
  return { family: hash(familyBytesOf(token)), hash: hash(token) }
}

// A new family: its first access and refresh tokens.
export function newFamily(): { family: string; access: string; refresh: string } {
  const familyBytes = randomBytes(FAMILY_BYTES)
  return { family: hash(familyBytes), access: tokenOf(familyBytes), refresh: tokenOf(familyBytes) }
}

// Another token of the family `token` belongs to (a refresh's new pair).
export function sibling(token: string): string {
  return tokenOf(familyBytesOf(token))
}

const familyBytesOf = (token: string) => Buffer.from(token, 'base64url').subarray(0, FAMILY_BYTES)

function tokenOf(familyBytes: Uint8Array): string {
  return Buffer.concat([familyBytes, randomBytes(SECRET_BYTES)]).toString('base64url')
}

export const tokenHash = (token: string) => hash(token)

// The index key of a user's logins: a hash, so user ids (often e-mail addresses) are not key names.
export const userKey = (userId: string) => hash(userId)
