// IPv4/IPv6 addresses and CIDR ranges as 32-bit words, for allow/deny lists and trusted proxies.
export interface Cidr {
  v6: boolean
  words: number[] // 1 word for v4, 4 for v6
  prefix: number
  text?: string // as written
}

function parseV4(text: string): number[] | null {
  const parts = text.split('.')
  if (parts.length !== 4) return null
  let n = 0
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255 || (p.length > 1 && p[0] === '0')) return null
    n = n * 256 + Number(p)
  }
  return [n >>> 0]
}

function parseV6(text: string): number[] | null {
  let head = text
  let v4tail: number[] | null = null
  const lastColon = text.lastIndexOf(':')
  if (text.includes('.', lastColon)) {
    v4tail = parseV4(text.slice(lastColon + 1))
    if (!v4tail) return null
    head = `${text.slice(0, lastColon + 1)}0:0`
  }
  const halves = head.split('::')
  if (halves.length > 2) return null
  const toGroups = (s: string) => (s === '' ? [] : s.split(':'))
  const left = toGroups(halves[0]!)
  const right = halves.length === 2 ? toGroups(halves[1]!) : []
  const missing = 8 - left.length - right.length
  if (halves.length === 1 ? left.length !== 8 : missing < 1) return null
  const groups = [...left, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...right]
  const nums: number[] = []
  for (const g of groups) {
    if (!/^[0-9A-Fa-f]{1,4}$/.test(g)) return null
    nums.push(parseInt(g, 16))
  }
  const words = [0, 1, 2, 3].map((i) => ((nums[i * 2]! << 16) | nums[i * 2 + 1]!) >>> 0)
  if (v4tail) words[3] = v4tail[0]!
  return words
}

// An address as words; an IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) becomes IPv4.
export function parseIp(text: string): { v6: boolean; words: number[] } | null {
  if (text.includes(':')) {
    const words = parseV6(text.replace(/%.*$/, ''))
    if (!words) return null
    if (words[0] === 0 && words[1] === 0 && words[2] === 0xffff) return { v6: false, words: [words[3]!] }
    return { v6: true, words }
  }
  const words = parseV4(text)
  return words && { v6: false, words }
}

// A range inside `::ffff:0:0/96` becomes the IPv4 range it maps, so that it matches the
// same clients as its IPv4 spelling (clients in that space are parsed as IPv4 above).
export function parseCidr(text: string): Cidr | null {
  const [addr, bits, extra] = text.split('/')
  if (extra !== undefined || addr === undefined) return null
  const v6 = addr.includes(':')
  const words = v6 ? parseV6(addr) : parseV4(addr)
  if (!words) return null
  const max = v6 ? 128 : 32
  if (bits !== undefined && (!/^\d{1,3}$/.test(bits) || Number(bits) > max)) return null
  const prefix = bits === undefined ? max : Number(bits)
  if (v6 && prefix >= 96 && words[0] === 0 && words[1] === 0 && words[2] === 0xffff)
    return { v6: false, words: [words[3]!], prefix: prefix - 96, text }
  return { v6, words, prefix, text }
}

function contains(c: Cidr, ip: { v6: boolean; words: number[] }): boolean {
  if (c.v6 !== ip.v6) return false
  let left = c.prefix
  for (let i = 0; i < c.words.length && left > 0; i++) {
    const take = Math.min(32, left)
    const mask = take === 32 ? 0xffffffff : (~0 << (32 - take)) >>> 0
    if ((c.words[i]! & mask) >>> 0 !== (ip.words[i]! & mask) >>> 0) return false
    left -= take
  }
  return true
}

export type IpMatcher = (ip: string) => boolean

// Clients repeat: each address is parsed once, whatever number of matchers ask (a bounded
// memory, emptied when full). Text longer than any address (garbage in X-Forwarded-For) is
// parsed each time and never kept.
const MAX_ADDRESS_TEXT = 64
const parsed = new Map<string, ReturnType<typeof parseIp>>()
function parseOnce(text: string): ReturnType<typeof parseIp> {
  if (text.length > MAX_ADDRESS_TEXT) return parseIp(text)
  let ip = parsed.get(text)
  if (ip === undefined) {
    ip = parseIp(text)
    if (parsed.size >= 4096) parsed.clear()
    parsed.set(text, ip)
  }
  return ip
}

// `unreadable` answers for an address that does not parse (empty when the peer is
// unknown, garbage from a trusted proxy's X-Forwarded-For). An allow list and trusted
// proxies want `false`; a deny list wants `true`, so that it fails closed.
export function ipMatcher(cidrs: readonly Cidr[], unreadable = false): IpMatcher {
  const list = Object.freeze([...cidrs])
  return function matchIp(text) {
    const ip = parseOnce(text)
    if (!ip) return unreadable
    for (const c of list) if (contains(c, ip)) return true
    return false
  }
}
