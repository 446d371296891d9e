// A store app as the admin API takes it and the store keeps it (../cli-contract: the `app`
// block's directive names as fields). Validated with zod both ways: on PUT, and when read
// back from a store another instance (or an operator with redis-cli) may have written.
import { z } from 'zod'

// An app name is exact: no case folding, no percent-decoding, no path segments.
export const APP_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/

const instant = z.union([z.iso.datetime({ offset: true }), z.iso.date()]).transform((s) => (s.length === 10 ? `${s}T00:00:00Z` : s))

// A secret or an API key: a value, or a value with a validity window (key rotation).
const credential = z.union([
  z.string().min(1),
  z
    .object({ value: z.string().min(1), from: instant.optional(), until: instant.optional() })
    .strict()
    .refine((c) => !c.from || !c.until || Date.parse(c.from) < Date.parse(c.until), { message: "'from' must be before 'until'" }),
])

const oneOrMany = <T extends z.ZodType>(t: T) => z.union([t, z.array(t)]).transform((v) => (Array.isArray(v) ? v : [v]) as z.output<T>[])

const fingerprint = z
  .string()
  .transform((s) => s.replace(/:/g, '').toLowerCase())
  .refine((s) => /^[0-9a-f]{64}$/.test(s), { message: 'a SHA-256 fingerprint is 32 bytes of hex (with or without colons)' })

// What PUT /apps/NAME accepts. The API key is turned into its SHA-256 before it is stored.
export const AppInput = z
  .object({
    key: z.string().min(1).max(256).optional(),
    secret: oneOrMany(credential).optional(),
    'api-key': oneOrMany(credential).optional(),
    'public-key': z.string().includes('-----BEGIN PUBLIC KEY-----', { message: 'a PEM public key (-----BEGIN PUBLIC KEY-----)' }).optional(),
    'cert-sha256': oneOrMany(fingerprint).optional(),
    'jwt-subject': z.string().min(1).optional(),
    'allow-ip': oneOrMany(z.string()).optional(),
    tier: z.string().optional(),
    group: z.string().optional(),
    meta: z.record(z.string(), z.string()).optional(),
  })
  .strict()
export type AppInput = z.output<typeof AppInput>

export interface StoredCredential {
  value: string
  from?: string
  until?: string
}

// What the store keeps: API keys only as `sha256` hex (never the key itself).
export const StoredApp = z
  .object({
    name: z.string().regex(APP_NAME),
    key: z.string().optional(),
    secret: z.array(z.object({ value: z.string(), from: z.string().optional(), until: z.string().optional() }).strict()).default([]),
    apiKeySha256: z
      .array(z.object({ value: z.string().regex(/^[0-9a-f]{64}$/), from: z.string().optional(), until: z.string().optional() }).strict())
      .default([]),
    publicKey: z.string().optional(),
    certs: z.array(z.string().regex(/^[0-9a-f]{64}$/)).default([]),
    jwtSubject: z.string().optional(),
    allowIp: z.array(z.string()).default([]),
    tier: z.string().optional(),
    group: z.string().optional(),
    meta: z.record(z.string(), z.string()).default({}),
    updatedAt: z.string(),
  })
  .strict()
export type StoredApp = z.output<typeof StoredApp>

const sha256Hex = (s: string) => new Bun.CryptoHasher('sha256').update(s).digest('hex')

const asCredential = (c: string | StoredCredential): StoredCredential => (typeof c === 'string' ? { value: c } : c)

export function toStoredApp(name: string, input: AppInput, now: Date): StoredApp {
  return {
    name,
    key: input.key,
    secret: (input.secret ?? []).map(asCredential),
    apiKeySha256: (input['api-key'] ?? []).map(asCredential).map((c) => ({ ...c, value: sha256Hex(c.value) })),
    publicKey: input['public-key'],
    certs: input['cert-sha256'] ?? [],
    jwtSubject: input['jwt-subject'],
    allowIp: input['allow-ip'] ?? [],
    tier: input.tier,
    group: input.group,
    meta: input.meta ?? {},
    updatedAt: now.toISOString(),
  }
}
