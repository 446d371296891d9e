// The kit's JWT key: one P-256 key pair per process. Kit builds pass its public half as
// BuildOptions.testJwtKey, so every `require jwt` also accepts tokens minted here (their header
// names KIT_KID); the issuer, audience and time checks stay the route's own.
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { SignJWT } from 'jose'
import type { TestJwtKey } from '../directives/define.ts'

export const KIT_KID = 'portcullis-testing'
const ALG = 'ES256'

let pair: { privateKey: KeyObject; publicKey: KeyObject } | null = null
function keys() {
  return (pair ??= generateKeyPairSync('ec', { namedCurve: 'P-256' }))
}

export function testJwtKey(): TestJwtKey {
  return { kid: KIT_KID, alg: ALG, publicKey: keys().publicKey.export({ type: 'spki', format: 'pem' }) as string }
}

// A token with `claims` over the defaults: iat now, exp an hour on, iss and aud as the route
// expects them. A claim given as undefined is left out (a token without exp, say).
export async function mintToken(claims: Record<string, unknown>, defaults: Record<string, unknown>, nowMs: number): Promise<string> {
  const iat = Math.floor(nowMs / 1000)
  const all: Record<string, unknown> = { iat, exp: iat + 3600, ...defaults, ...claims }
  const payload = Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined))
  return new SignJWT(payload).setProtectedHeader({ alg: ALG, kid: KIT_KID, typ: 'JWT' }).sign(keys().privateKey)
}
