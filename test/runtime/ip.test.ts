import { afterAll, describe, expect, test } from 'bun:test'
import { buildProgram, renderDiagnostics } from '../../src/index.ts'
import { ipMatcher, parseCidr, parseIp } from '../../src/runtime/ip.ts'
import { policyDir, removeDir } from '../helpers/gateway.ts'

test.each(['10.0.0.0/8', '203.0.113.7', '::1', '2001:db8::/32', '::ffff:10.1.2.3', 'fe80::1', '0.0.0.0/0', '::/0'])('%s is a CIDR', (text) => {
  expect(parseCidr(text)).not.toBeNull()
})

test.each(['10.0.0.300', '10.0.0.0/33', '2001:db8::/129', '1.2.3', '01.2.3.4', '1::2::3', 'x', '10.0.0.0/8/8', '12345::'])('%s is not', (text) => {
  expect(parseCidr(text)).toBeNull()
})

test('an IPv4-mapped IPv6 address is IPv4', () => {
  expect(parseIp('::ffff:127.0.0.1')).toEqual({ v6: false, words: [0x7f000001] })
})

test('matching v4 and v6 ranges', () => {
  const m = ipMatcher(['10.0.0.0/8', '192.168.1.7', '2001:db8::/32', '::1'].map((c) => parseCidr(c)!))
  expect(['10.255.0.1', '192.168.1.7', '2001:db8:1::5', '::1', '::ffff:10.0.0.1'].map(m)).toEqual([true, true, true, true, true])
  expect(['11.0.0.1', '192.168.1.8', '2001:db9::1', '::2', 'garbage', ''].map(m)).toEqual([false, false, false, false, false, false])
})

test('prefix lengths that are not multiples of 8', () => {
  const m = ipMatcher([parseCidr('172.16.0.0/12')!, parseCidr('2001:db8:8000::/33')!])
  expect([m('172.31.255.255'), m('172.32.0.0'), m('2001:db8:8000::1'), m('2001:db8:7fff::1')]).toEqual([true, false, true, false])
})

test('an unreadable address matches nothing by default, and everything when asked to (deny lists fail closed)', () => {
  const ranges = [parseCidr('192.0.2.0/24')!]
  const allow = ipMatcher(ranges)
  const deny = ipMatcher(ranges, true)
  for (const bad of ['', 'garbage', 'unknown', '10.0.0.300', '1::2::3', '192.0.2.1 ', '[::1]']) {
    expect([bad, allow(bad)]).toEqual([bad, false])
    expect([bad, deny(bad)]).toEqual([bad, true])
  }
  // Readable addresses are judged on their ranges either way.
  expect([allow('192.0.2.9'), deny('192.0.2.9'), allow('198.51.100.1'), deny('198.51.100.1')]).toEqual([true, true, false, false])
})

test('an IPv4-mapped client address matches IPv4 ranges, and mapped ranges match IPv4 clients', () => {
  expect(parseCidr('::ffff:10.0.0.0/104')).toMatchObject({ v6: false, words: [0x0a000000], prefix: 8 })
  expect(parseCidr('::FFFF:10.1.2.3')).toMatchObject({ v6: false, words: [0x0a010203], prefix: 32 })
  expect(parseCidr('0:0:0:0:0:ffff:a01:203/128')).toMatchObject({ v6: false, words: [0x0a010203], prefix: 32 })
  expect(parseCidr('::ffff:10.0.0.0/95')?.v6).toBe(true) // wider than the mapped space: stays IPv6
  for (const spelled of ['10.0.0.0/8', '::ffff:10.0.0.0/104', '::ffff:a00:0/104']) {
    for (const unreadable of [false, true]) {
      const m = ipMatcher([parseCidr(spelled)!], unreadable)
      const clients = [
        '10.1.2.3',
        '::ffff:10.1.2.3',
        '::FFFF:10.1.2.3',
        '0:0:0:0:0:ffff:a01:203',
        '11.1.2.3',
        '::ffff:11.1.2.3',
        '::a01:203',
        '64:ff9b::a01:203',
      ]
      expect([spelled, clients.map(m)]).toEqual([spelled, [true, true, true, true, false, false, false, false]])
    }
  }
})

describe('allow ip / deny ip in a compiled program', async () => {
  const dir = policyDir({
    'main.policy': `
match GET /deny { deny ip 192.0.2.0/24; respond 200 text "in" }
match GET /deny-mapped { deny ip ::ffff:10.0.0.0/104; respond 200 text "in" }
match GET /allow { allow ip 10.0.0.0/8; respond 200 text "in" }
`,
  })
  const built = await buildProgram(dir)
  afterAll(() => removeDir(dir))
  if (built.diagnostics) throw new Error(renderDiagnostics(built.diagnostics))
  const program = built.program
  const status = async (path: string, ip: string) => {
    const res = await program.fetch(new Request(`http://gateway.test${path}`), { ip, tls: false })
    return [ip, res.status, res.headers.get('gateway-error')]
  }

  test('an address neither can read (an unknown peer is empty) is 403 forbidden on deny ip as on allow ip', async () => {
    for (const ip of ['garbage', '', '300.1.2.3']) {
      expect(await status('/deny', ip)).toEqual([ip, 403, 'forbidden'])
      expect(await status('/allow', ip)).toEqual([ip, 403, 'forbidden'])
    }
    expect(await status('/deny', '192.0.2.7')).toEqual(['192.0.2.7', 403, 'forbidden'])
    expect(await status('/deny', '198.51.100.7')).toEqual(['198.51.100.7', 200, null])
    expect(await status('/allow', '10.9.9.9')).toEqual(['10.9.9.9', 200, null])
  })

  test('IPv4-mapped peers, as dual-stack listeners report them, are judged as IPv4', async () => {
    expect(await status('/allow', '::ffff:10.9.9.9')).toEqual(['::ffff:10.9.9.9', 200, null])
    expect(await status('/allow', '::ffff:11.9.9.9')).toEqual(['::ffff:11.9.9.9', 403, 'forbidden'])
    expect(await status('/deny', '::ffff:192.0.2.7')).toEqual(['::ffff:192.0.2.7', 403, 'forbidden'])
    expect(await status('/deny', '::ffff:198.51.100.7')).toEqual(['::ffff:198.51.100.7', 200, null])
    expect(await status('/deny-mapped', '::ffff:10.1.2.3')).toEqual(['::ffff:10.1.2.3', 403, 'forbidden'])
    expect(await status('/deny-mapped', '10.1.2.3')).toEqual(['10.1.2.3', 403, 'forbidden'])
    expect(await status('/deny-mapped', '11.1.2.3')).toEqual(['11.1.2.3', 200, null])
  })
})

// Parsed addresses are remembered; text longer than any address (garbage a trusted proxy passed
// on in X-Forwarded-For) is not: thousands of kilobyte-long ones must not pile up.
test('thousands of distinct 8 KB non-addresses: each unreadable, none of their text kept', () => {
  const allow = ipMatcher([parseCidr('10.0.0.0/8')!])
  const deny = ipMatcher([parseCidr('10.0.0.0/8')!], true)
  for (let i = 0; i < 100; i++) allow(`10.0.0.${i}`)
  Bun.gc(true)
  const before = process.memoryUsage().heapUsed
  for (let i = 0; i < 3000; i++) {
    const garbage = `${'g'.repeat(8 * 1024)}-${i}`
    expect(allow(garbage)).toBe(false)
    expect(deny(garbage)).toBe(true)
  }
  Bun.gc(true)
  expect(process.memoryUsage().heapUsed - before).toBeLessThan(4 * 1024 * 1024)
})
