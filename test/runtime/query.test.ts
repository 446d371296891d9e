// Raw query editing: the named parameters change, every other byte stays.
import { describe, expect, test } from 'bun:test'
import { removeParam, removeParams, setParam } from '../../src/runtime/query.ts'

describe('removeParam', () => {
  test.each([
    // [raw, name, expected]
    ['a=1&b=2&c=3', 'b', 'a=1&c=3'],
    ['a=1&b=2&c=3', 'a', 'b=2&c=3'],
    ['a=1&b=2&c=3', 'c', 'a=1&b=2'],
    ['b=2', 'b', ''],
    ['b=1&b=2&b', 'b', ''],
    ['flag&a=%20x&b=~&keep=1+2', 'a', 'flag&b=~&keep=1+2'],
    ['flag&a=%20x&b=~&keep=1+2', 'flag', 'a=%20x&b=~&keep=1+2'],
    ['x=%7E&token=t&y=a%2Bb&z=', 'token', 'x=%7E&y=a%2Bb&z='],
    ['a=1&token&b=2', 'token', 'a=1&b=2'],
    ['a=1&token=&b=2', 'token', 'a=1&b=2'],
    ['k=1&token=a=b=c&k=2', 'token', 'k=1&k=2'],
    ['a=1;token=2&c=3', 'token', 'a=1;token=2&c=3'], // `;` is not a separator
    ['a=1;b=2&token=3', 'token', 'a=1;b=2'],
    ['a=1&&token=2&&b=3', 'token', 'a=1&&&b=3'], // empty pieces are kept
    ['a=1&', 'a', ''],
    ['&a=1', 'a', ''],
    ['&', 'a', '&'],
    ['tokens=1&xtoken=2&Token=3&token_=4', 'token', 'tokens=1&xtoken=2&Token=3&token_=4'],
    ['tok%65n=1&keep=%41', 'token', 'keep=%41'], // the name matches after decoding
    ['TOK%65n=1', 'token', 'TOK%65n=1'], // case sensitive
    ['my+name=1&my%20name=2&myname=3', 'my name', 'myname=3'],
    ['a%2Bb=1&a+b=2', 'a+b', 'a+b=2'],
    ['caf%C3%A9=1&cafe=2', 'café', 'cafe=2'],
    ['%zz=1&b=2', '%zz', 'b=2'], // a bad escape stays literal in the name
    ['a%3Db=1&a=2', 'a=b', 'a=2'],
    ['a=%26&b=2', 'b', 'a=%26'],
    ['', 'a', ''],
  ])('%p without %p is %p', (raw, name, expected) => {
    expect(removeParam(raw, name)).toBe(expected)
  })

  test('an untouched query is returned as the same string', () => {
    const raw = 'x=%7e&y=+'
    expect(removeParam(raw, 'z')).toBe(raw)
  })

  test('several names at once', () => {
    expect(removeParams('secret=s&keep=1&token=t&keep=2+2&flag', ['secret', 'token'])).toBe('keep=1&keep=2+2&flag')
    expect(removeParams('a=1', [])).toBe('a=1')
  })
})

describe('setParam', () => {
  test.each([
    // [raw, name, value, expected]
    ['', 'a', '1', 'a=1'],
    ['b=2', 'a', '1', 'b=2&a=1'],
    ['a=0&b=2', 'a', '1', 'a=1&b=2'], // replaced in place
    ['b=2&a=0&c=3', 'a', '1', 'b=2&a=1&c=3'],
    ['a=0&b=2&a=9&a', 'a', '1', 'a=1&b=2'], // later ones dropped
    ['flag&a=%20x&b=~&keep=1+2', 'added', 'yes', 'flag&a=%20x&b=~&keep=1+2&added=yes'],
    ['flag&a=%20x&b=~&keep=1+2', 'b', 'new', 'flag&a=%20x&b=new&keep=1+2'],
    ['flag&a=%20x&b=~&keep=1+2', 'flag', 'on', 'flag=on&a=%20x&b=~&keep=1+2'],
    ['a=1', 'v', 'a&b=c d', 'a=1&v=a%26b%3Dc%20d'],
    ['a=1', 'v', "~!*()'", "a=1&v=~!*()'"],
    ['a=1', 'v', '', 'a=1&v='],
    ['a=1', 'v', 'é/?#+', 'a=1&v=%C3%A9%2F%3F%23%2B'],
    ['a=1', 'my name', 'x', 'a=1&my%20name=x'],
    ['my+name=0&z=1', 'my name', 'x', 'my+name=x&z=1'], // the client's spelling of the name is kept
    ['tok%65n=old', 'token', 'new', 'tok%65n=new'],
    ['a=1;v=2', 'v', '3', 'a=1;v=2&v=3'],
    ['a=1&&b=2', 'v', '3', 'a=1&&b=2&v=3'],
    ['vv=1&v_=2', 'v', '3', 'vv=1&v_=2&v=3'],
  ])('%p with %p = %p is %p', (raw, name, value, expected) => {
    expect(setParam(raw, name, value)).toBe(expected)
  })

  test('a lone surrogate in the value is sent as U+FFFD, not an exception', () => {
    expect(setParam('', 'v', 'a\uD800b')).toBe('v=a%EF%BF%BDb')
  })
})
