// The tokens of the policy language. Order matters: Chevrotain tries them in
// array order, so the more specific literal shapes come before Number and Word.
import { createToken, Lexer, type TokenType } from 'chevrotain'

const tailBoundary = '(?![A-Za-z0-9_.:/])'

export const WhiteSpace = createToken({ name: 'WhiteSpace', pattern: /[ \t\r\n\f\v]+/, group: Lexer.SKIPPED, line_breaks: true })
export const Comment = createToken({ name: 'Comment', pattern: /#[^\n]*/, group: Lexer.SKIPPED })

export const StringLit = createToken({ name: 'String', pattern: /"(?:[^"\\\n]|\\.)*"/, label: 'a "string"' })
export const UrlLit = createToken({ name: 'Url', pattern: /https?:\/\/[^\s,;"#{}]+/, label: 'a URL' })
export const DateLit = createToken({
  name: 'Date',
  pattern: /\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}))?(?![A-Za-z0-9_:])/,
  label: 'a date',
})
// IPv6 needs at least two colons; hex groups only, so `orders:write` stays a word.
export const Ip6Lit = createToken({
  name: 'Ip6',
  pattern: /(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|\d{1,3}(?:\.\d{1,3}){3})?(?:\/\d{1,3})?(?![A-Za-z0-9_:.\-])/,
  label: 'an IPv6 address',
})
export const Ip4Lit = createToken({
  name: 'Ip4',
  pattern: /\d{1,3}(?:\.\d{1,3}){3}(?:\/\d{1,2})?(?![A-Za-z0-9_.:])/,
  label: 'an IPv4 address',
})
export const RateLit = createToken({
  name: 'Rate',
  pattern: new RegExp(`\\d+\\/(?:second|sec|s|minute|min|hour|hr|h|day|d)${tailBoundary}`),
  label: 'a rate like 20/min',
})
export const DurationLit = createToken({ name: 'Duration', pattern: new RegExp(`\\d+(?:ms|s|m|h|d)${tailBoundary}`), label: 'a duration like 5s' })
export const SizeLit = createToken({ name: 'Size', pattern: new RegExp(`\\d+(?:b|kb|mb|gb)${tailBoundary}`), label: 'a size like 1mb' })
// A share of a `proxy split`: `90%`, `12.5%`.
export const PercentLit = createToken({ name: 'Percent', pattern: /\d+(?:\.\d+)?%(?![A-Za-z0-9_])/, label: 'a percentage like 90%' })
export const NumberLit = createToken({ name: 'Number', pattern: new RegExp(`\\d+${tailBoundary}`), label: 'a number' })
// A path may carry `{name}`, `{name:int}` and `{name:/regex/}` groups (one level of braces inside).
export const PathLit = createToken({
  name: 'Path',
  pattern: /\/(?:[^\s;{}#",]|\{(?:[^{}\s]|\{[^{}\s]*\})*\})*/,
  label: 'a path',
})
// A literal that starts with a digit but is none of the above (`10tb`, `1.5mb`, `5sec`,
// `127.0.0.1:9002`): one token, so the checker can name it whole.
export const MalformedLit = createToken({ name: 'Malformed', pattern: /\d[A-Za-z0-9_.:\/\-]*/, label: 'a literal' })
export const Word = createToken({
  name: 'Word',
  pattern: /(?:\*\.)?[A-Za-z_][A-Za-z0-9_\-]*(?:[.:+][A-Za-z0-9_\-]+)*/,
  label: 'a name',
})
export const Star = createToken({ name: 'Star', pattern: /\*/, label: '"*"' })
export const LBrace = createToken({ name: 'LBrace', pattern: /\{/, label: '"{"' })
export const RBrace = createToken({ name: 'RBrace', pattern: /\}/, label: '"}"' })
export const Comma = createToken({ name: 'Comma', pattern: /,/, label: '","' })
export const Semicolon = createToken({ name: 'Semicolon', pattern: /;/, label: '";"' })
export const Equals = createToken({ name: 'Equals', pattern: /=/, label: '"="' })
export const NotEquals = createToken({ name: 'NotEquals', pattern: /!=/, label: '"!="' })

// Declaration keywords are Words too (category), so `per app` or `allow app` still read as words.
function keyword(word: string): TokenType {
  return createToken({
    name: `Kw_${word}`,
    pattern: new RegExp(`${word}(?![A-Za-z0-9_\\-.:+])`),
    longer_alt: Word,
    categories: [Word],
    label: `"${word}"`,
  })
}
// The words that start a top-level declaration: the one list the parser, the checker's
// messages and the editor grammar are derived from. Each has a `<word>Decl` parser rule.
export const DECLARATION_KEYWORDS = ['upstream', 'app', 'tier', 'sink', 'session', 'defaults', 'import', 'match'] as const
export type DeclarationKeyword = (typeof DECLARATION_KEYWORDS)[number]
export const isDeclarationKeyword = (word: string): word is DeclarationKeyword => (DECLARATION_KEYWORDS as readonly string[]).includes(word)

export const declarationTokens = Object.freeze(
  Object.fromEntries(DECLARATION_KEYWORDS.map((w) => [w, keyword(w)])) as Record<DeclarationKeyword, TokenType>,
)
export const HostKw = keyword('host')

const declarationKeywords = DECLARATION_KEYWORDS.map((w) => declarationTokens[w])

// The literal shapes, most specific first (the lexer tries tokens in order).
const literalTokens: TokenType[] = [
  StringLit,
  UrlLit,
  DateLit,
  Ip6Lit,
  Ip4Lit,
  RateLit,
  DurationLit,
  SizeLit,
  PercentLit,
  NumberLit,
  PathLit,
  MalformedLit,
]

export const allTokens: TokenType[] = [
  WhiteSpace,
  Comment,
  ...literalTokens,
  ...declarationKeywords,
  HostKw,
  Word,
  Star,
  LBrace,
  RBrace,
  Comma,
  Semicolon,
  Equals,
  NotEquals,
]

// The kinds an argument may be; the parser accepts any of them in a statement.
export const argumentTokens: TokenType[] = [...literalTokens, Word, Star, Comma, Equals, NotEquals]

// Tokens that cannot start a statement: the parser reads them as strays and reports them.
export const strayTokens: TokenType[] = [...literalTokens, Star, Comma, Equals, NotEquals, Semicolon, LBrace]

export const PolicyLexer = new Lexer(allTokens, { positionTracking: 'full', ensureOptimizations: false })
