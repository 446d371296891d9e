// A typed cursor over a statement's arguments (Caddy's Dispenser). Each reader
// returns undefined after reporting a diagnostic at the argument's span.
import { existsSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { parseCidr, type Cidr } from '../runtime/ip.ts'
import type { Arg, ArgKind, Statement } from './ast.ts'
import { didYouMean, type DiagnosticBag, type Note } from './diagnostics.ts'
import { dateMs, durationMs, rateOf, sizeBytes, type Rate } from './literals.ts'
import { displayPath } from './load.ts'
import { joinSpans, spanOf, type Span } from './source.ts'
import { parseTemplate, stringOffsets, type Template } from './template.ts'
import { unquote } from './ast.ts'

const SMALLER_UNIT: Record<string, string> = { kb: 'b', mb: 'kb', gb: 'mb' }
const RATE_UNITS = ['s', 'sec', 'second', 'min', 'minute', 'h', 'hr', 'hour', 'd', 'day'].map((u) => `/${u}`)

export type SecretRef = { from: 'env'; name: string; span: Span } | { from: 'file'; path: string; span: Span }

export class ArgCursor {
  private i: number
  // Set once an argument was reported: what follows it is not reported again as extra.
  private failed = false

  constructor(
    readonly statement: Statement,
    readonly bag: DiagnosticBag,
    readonly usage: string,
    readonly name: string,
    start: number,
  ) {
    this.i = start
  }

  peek(offset = 0): Arg | undefined {
    return this.statement.words[this.i + offset]
  }
  done(): boolean {
    return this.i >= this.statement.words.length
  }
  // Where a missing argument is reported: just after the last one.
  private endSpan(): Span {
    const last = this.statement.words[this.statement.words.length - 1]!
    return spanOf(last.span.file, last.span.offset + last.span.length, 1)
  }

  // `hints` (what to write instead) come before the usage line.
  fail(code: string, message: string, span?: Span, ...hints: Note[]): undefined {
    this.failed = true
    return this.bag.error(code, message, span ?? this.peek()?.span ?? this.endSpan(), ...hints, { message: `usage: ${this.usage}` })
  }

  expect(kinds: ArgKind[], what: string): Arg | undefined {
    const a = this.peek()
    if (!a) return this.fail('missing-argument', `'${this.name}' expects ${what}`)
    if (!kinds.includes(a.kind))
      return this.fail('bad-argument', `'${this.name}' expects ${what}, found '${a.text}'`, undefined, ...this.hints(a, kinds))
    this.i++
    return a
  }

  // What the user probably meant when `a` is not one of `kinds`.
  private hints(a: Arg, kinds: ArgKind[]): Note[] {
    const write = (text: string) => [{ message: `write ${text}` }]
    if (kinds.includes('url') && !a.text.includes('://')) {
      // `127.0.0.1:9002`, `localhost:9002/base`: an address without its scheme.
      const address = a.kind === 'ip4' || ((a.kind === 'malformed' || a.kind === 'word') && /^[A-Za-z0-9.\-]+:\d+(\/\S*)?$/.test(a.text))
      if (address) return write(`http://${a.text}${this.touching(a)?.kind === 'path' ? this.touching(a)!.text : ''}`)
    }
    if (kinds.includes('size') && a.kind === 'malformed') {
      const m = /^(\d+)(b|kb|mb|gb)$/i.exec(a.text)
      if (m) return write(`${m[1]}${m[2]!.toLowerCase()} (units are lower case)`)
      const f = /^(\d+\.\d+)(kb|mb|gb)$/i.exec(a.text)
      if (f) return write(`${Math.round(Number(f[1]) * 1024)}${SMALLER_UNIT[f[2]!.toLowerCase()]} (a size is a whole number)`)
    }
    if (kinds.includes('duration') && a.kind === 'malformed') {
      const m = /^(\d+)(sec|secs|seconds?|mins?|minutes?|hrs?|hours?|days?)$/i.exec(a.text)
      if (m) return write(`${m[1]}${m[2]![0]!.toLowerCase()}`)
    }
    if (kinds.includes('string') && a.kind !== 'string') {
      // `respond 200 hello world`: the rest of the line, unquoted.
      const last = this.statement.words[this.statement.words.length - 1]!
      const rest = a.span.file.text.slice(a.span.offset, last.span.offset + last.span.length)
      // (After an unterminated string, `a` is its first word: it was quoted.)
      const opened = a.span.file.text[a.span.offset - 1] === '"'
      if (!opened && !rest.includes('"') && !rest.includes('\n')) return [{ message: `quote it: "${rest}"` }]
    }
    return []
  }

  // The argument right after `a` with no space between them (`localhost:9002` + `/base`).
  private touching(a: Arg): Arg | undefined {
    const next = this.statement.words[this.statement.words.indexOf(a) + 1]
    return next && next.span.offset === a.span.offset + a.span.length ? next : undefined
  }

  // `10 mb`, `5 s`, `20 /min`: a number and its unit written apart. Reported whole, with the fix.
  private spaced(units: readonly string[], what: string): true | undefined {
    const n = this.peek()
    const unit = this.peek(1)
    if (n?.kind !== 'number' || !unit || !units.includes(unit.text.toLowerCase())) return undefined
    const joined = `${n.text}${unit.text.toLowerCase()}`
    this.fail('bad-argument', `${what} is one word: the number and its unit go together`, joinSpans(n.span, unit.span), {
      message: `write ${joined}`,
    })
    this.i += 2
    return true
  }

  // The next word if it is `word` (an optional keyword); nothing is reported.
  accept(word: string): Arg | undefined {
    const a = this.peek()
    if (a?.kind === 'word' && a.text === word) {
      this.i++
      return a
    }
    return undefined
  }

  acceptKind(kind: ArgKind): Arg | undefined {
    const a = this.peek()
    if (a?.kind === kind) {
      this.i++
      return a
    }
    return undefined
  }

  oneOf<W extends string>(words: readonly W[], what: string): W | undefined {
    const a = this.expect(['word'], what)
    if (!a) return undefined
    if (!(words as readonly string[]).includes(a.text)) {
      const near = didYouMean(a.text, words)
      const hint = near ? [{ message: `did you mean '${near}'?` }] : []
      return this.fail('bad-argument', `'${this.name}' expects ${what} (${words.join(', ')}), found '${a.text}'`, a.span, ...hint)
    }
    return a.text as W
  }

  word(what = 'a name'): Arg | undefined {
    return this.expect(['word'], what)
  }

  string(what = 'a "string"'): { value: string; arg: Arg } | undefined {
    const a = this.expect(['string'], what)
    return a && { value: unquote(a.text), arg: a }
  }

  template(arg: Arg): Template {
    if (arg.kind === 'string') return parseTemplate(unquote(arg.text), arg.span, stringOffsets(arg.text, arg.span.offset))
    return parseTemplate(arg.text, arg.span, (i) => arg.span.offset + i)
  }

  integer(what: string, min: number, max: number): number | undefined {
    const a = this.expect(['number'], what)
    if (!a) return undefined
    const n = Number(a.text)
    if (n < min || n > max) return this.fail('bad-argument', `${what} must be between ${min} and ${max}, found ${a.text}`, a.span)
    return n
  }

  duration(what = 'a duration like 5s'): number | undefined {
    if (this.spaced(['ms', 's', 'm', 'h', 'd'], 'a duration')) return undefined
    const a = this.expect(['duration'], what)
    if (!a) return undefined
    const ms = durationMs(a.text)
    if (ms <= 0) return this.fail('bad-argument', `a duration must be more than zero, found ${a.text}`, a.span)
    return ms
  }

  rate(): Rate | undefined {
    if (this.spaced(RATE_UNITS, 'a rate')) return undefined
    const n = this.peek()
    if (n?.kind === 'malformed' && /^\d+\//.test(n.text)) {
      return this.fail('bad-rate', `'${n.text}' is not a rate: the unit is /s, /sec, /second, /min, /minute, /h, /hr, /hour, /d or /day`, n.span)
    }
    const a = this.expect(['rate'], 'a rate like 20/min')
    if (!a) return undefined
    const r = rateOf(a.text)
    if (r.limit <= 0) return this.fail('bad-argument', `a rate must allow at least one request, found ${a.text}`, a.span)
    return r
  }

  size(): number | undefined {
    if (this.spaced(['b', 'kb', 'mb', 'gb'], 'a size')) return undefined
    const a = this.expect(['size', 'number'], 'a size like 1mb')
    if (!a) return undefined
    if (a.kind === 'number') return this.fail('bad-argument', `a size needs a unit (b, kb, mb, gb), found ${a.text}`, a.span)
    return sizeBytes(a.text)
  }

  date(): number | undefined {
    const a = this.expect(['date'], 'a date like 2027-06-30')
    if (!a) return undefined
    const ms = dateMs(a.text)
    return Number.isNaN(ms) ? this.fail('bad-argument', `'${a.text}' is not a valid date`, a.span) : ms
  }

  url(): URL | undefined {
    const a = this.expect(['url'], 'a URL like http://127.0.0.1:9001')
    if (!a) return undefined
    return parseUrl(a.text) ?? this.fail('bad-url', `'${a.text}' is not a valid http(s) URL without query or credentials`, a.span)
  }

  // `A, B, C` — at least one item; every bad item is reported, then the list is undefined.
  list<V>(item: () => V | undefined): V[] | undefined {
    const out: V[] = []
    let ok = true
    for (;;) {
      const v = item()
      if (v === undefined) ok = false
      else out.push(v)
      if (!this.acceptKind('comma')) return ok ? out : undefined
    }
  }

  cidr(): Cidr | undefined {
    const a = this.expect(['ip4', 'ip6'], 'an IP address or CIDR like 10.0.0.0/8')
    if (!a) return undefined
    return parseCidr(a.text) ?? this.fail('bad-cidr', `'${a.text}' is not a valid IP address or CIDR range`, a.span)
  }

  // `env NAME` or `file "path"` (relative to the policy file). A missing file is an error now;
  // a missing variable is reported by the checker, which knows the environment of the build.
  secret(): SecretRef | undefined {
    const kind = this.oneOf(['env', 'file'], 'a secret source')
    if (!kind) return undefined
    if (kind === 'env') {
      const n = this.word('an environment variable name')
      if (!n) return undefined
      return { from: 'env', name: n.text, span: n.span }
    }
    const s = this.string('a "path"')
    if (!s) return undefined
    const path = resolve(dirname(s.arg.span.file.absPath), s.value)
    if (!existsSync(path)) return this.fail('missing-file', `file "${s.value}" does not exist (looked for ${displayPath(path)})`, s.arg.span)
    return { from: 'file', path, span: s.arg.span }
  }

  // Nothing may follow: report the first extra argument.
  end(): void {
    const a = this.peek()
    if (!a || this.failed) return
    const last = this.statement.words[this.statement.words.length - 1]!
    this.fail('extra-argument', `unexpected '${a.text}' after '${this.name}'`, joinSpans(a.span, last.span))
    this.i = this.statement.words.length
  }
}

export function parseUrl(text: string): URL | undefined {
  try {
    const u = new URL(text)
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || !u.hostname || u.username || u.password || u.search || u.hash) return undefined
    return u
  } catch {
    return undefined
  }
}
