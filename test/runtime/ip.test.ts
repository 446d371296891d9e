import { expect, test } from 'bun:test'
import { ipMatcher, parseCidr, parseIp } from '../../src/runtime/ip.ts'

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
