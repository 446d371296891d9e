// The keys `encrypt response`, `decrypt request` and `sign response` use, derived from an app's
// secret so a partner can derive the same ones (docs/payloads.md): HKDF-SHA256 (RFC 5869),
// IKM = the secret's UTF-8 bytes, an empty salt, info = "portcullis <purpose> v1 " + app.key,
// 32 bytes.
import { hkdfSync } from 'node:crypto'
import { validAt, type App, type Credential } from '../identity.ts'

export type KeyPurpose = 'response' | 'request' | 'response-signature'

export const KEY_LENGTH = 32

export function keyInfo(purpose: KeyPurpose, appKey: string): string {
  return `portcullis ${purpose} v1 ${appKey}`
}

export function deriveKey(secret: Uint8Array, purpose: KeyPurpose, appKey: string): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', secret, new Uint8Array(0), keyInfo(purpose, appKey), KEY_LENGTH))
}

// Each key is derived once per secret: the cache lives as long as the Credential object (a
// reload or a store update makes new ones and the old entries go with them), and holds at most
// one key per purpose and app key id for it.
const derived = new WeakMap<Credential, Map<string, Uint8Array>>()
const PER_CREDENTIAL = 8

function keyFor(c: Credential, purpose: KeyPurpose, appKey: string): Uint8Array {
  let keys = derived.get(c)
  if (keys === undefined) derived.set(c, (keys = new Map()))
  const id = keyInfo(purpose, appKey)
  let key = keys.get(id)
  if (key === undefined) {
    if (keys.size >= PER_CREDENTIAL) keys.clear()
    keys.set(id, (key = deriveKey(c.value, purpose, appKey)))
  }
  return key
}

// The secret to encrypt or sign with: the newest one valid now (the latest `from`; among equal
// ones the last declared), so a rotation takes effect when the new secret's window opens.
export function newestSecret(app: App, now: number): Credential | null {
  let best: Credential | null = null
  for (const s of app.secrets) {
    if (!validAt(s, now)) continue
    if (best === null || (s.from ?? -Infinity) >= (best.from ?? -Infinity)) best = s
  }
  return best
}

// The key to encrypt or sign with now, or null when the app has no key id or secret valid now.
export function currentKey(app: App, purpose: KeyPurpose, now: number): Uint8Array | null {
  const s = app.key === null ? null : newestSecret(app, now)
  return s === null ? null : keyFor(s, purpose, app.key!)
}

// Every key a message may have been made with: one per secret valid now, newest first.
export function validKeys(app: App, purpose: KeyPurpose, now: number): Uint8Array[] {
  if (app.key === null) return []
  const newest = newestSecret(app, now)
  const out: Uint8Array[] = []
  if (newest) out.push(keyFor(newest, purpose, app.key))
  for (const s of app.secrets) if (s !== newest && validAt(s, now)) out.push(keyFor(s, purpose, app.key))
  return out
}
