// The RFC 9421 §3.3 algorithms the gateway verifies, as a descriptor table: which key of an app
// each one uses, and how it checks a signature over the signature base.
import { constants, createHmac, timingSafeEqual, verify, type KeyObject } from 'node:crypto'
import { validAt, type App } from '../identity.ts'

export interface SignatureAlgorithm {
  readonly name: string
  // The app holds a key this algorithm can use.
  usable(app: App): boolean
  verify(base: Buffer, signature: Uint8Array, app: App, now: number): boolean
}

// node:crypto throws on a key/signature it cannot use (a wrong length, a bad encoding): no match.
function checked(fn: () => boolean): boolean {
  try {
    return fn()
  } catch {
    return false
  }
}

function withKey(
  name: string,
  fits: (k: KeyObject) => boolean,
  check: (base: Buffer, sig: Uint8Array, key: KeyObject) => boolean,
): SignatureAlgorithm {
  return {
    name,
    usable: (app) => app.publicKey !== null && fits(app.publicKey),
    verify: (base, sig, app) => checked(() => check(base, sig, app.publicKey!)),
  }
}

const curve = (k: KeyObject) => (k.asymmetricKeyType === 'ec' ? k.asymmetricKeyDetails?.namedCurve : undefined)

export const ALGORITHMS: readonly SignatureAlgorithm[] = Object.freeze([
  {
    name: 'hmac-sha256',
    usable: (app) => app.secrets.length > 0,
    // Every secret valid now is tried (two during a rotation); each compare takes the same time.
    verify(base, sig, app, now) {
      let ok = false
      for (const s of app.secrets) {
        if (!validAt(s, now)) continue
        const mac = createHmac('sha256', s.value).update(base).digest()
        if (sig.byteLength === mac.byteLength && timingSafeEqual(mac, sig)) ok = true
      }
      return ok
    },
  },
  withKey(
    'ed25519',
    (k) => k.asymmetricKeyType === 'ed25519',
    (base, sig, key) => verify(null, base, key, sig),
  ),
  withKey(
    'rsa-pss-sha512',
    (k) => k.asymmetricKeyType === 'rsa' || k.asymmetricKeyType === 'rsa-pss',
    (base, sig, key) => verify('sha512', base, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 64 }, sig),
  ),
  withKey(
    'ecdsa-p256-sha256',
    (k) => curve(k) === 'prime256v1',
    (base, sig, key) => verify('sha256', base, { key, dsaEncoding: 'ieee-p1363' }, sig),
  ),
  withKey(
    'ecdsa-p384-sha384',
    (k) => curve(k) === 'secp384r1',
    (base, sig, key) => verify('sha384', base, { key, dsaEncoding: 'ieee-p1363' }, sig),
  ),
])

export const algorithmNamed = new Map(ALGORITHMS.map((a) => [a.name, a]))
