// CST → AST. Every node keeps its span; syntax errors become diagnostics here.
import type { CstNode, IToken } from 'chevrotain'
import { parsePolicy } from '../../grammar/parser.ts'
export { DECLARATION_KEYWORDS, isDeclarationKeyword, type DeclarationKeyword } from '../../grammar/tokens.ts'
import { DiagnosticBag } from './diagnostics.ts'
import { SourceFile, spanOf, joinSpans, type Span } from './source.ts'

export type ArgKind =
  | 'string'
  | 'url'
  | 'date'
  | 'ip6'
  | 'ip4'
  | 'rate'
  | 'duration'
  | 'size'
  | 'percent'
  | 'number'
  | 'path'
  | 'word'
  | 'star'
  | 'comma'
  | 'equals'
  | 'not-equals'
  | 'malformed'

export interface Arg {
  kind: ArgKind
  text: string // the token's image (strings keep their quotes)
  span: Span
}

export interface Statement {
  words: Arg[] // head word first, then the arguments
  block?: Statement[]
  blockSpan?: Span // from its `{` to its `}` (or the `{` alone when it is never closed)
  span: Span
}

export interface Named {
  name: string
  nameSpan: Span
}

export type Declaration =
  | { kind: 'import'; path: string; pathSpan: Span; span: Span }
  | ({ kind: 'upstream'; body: Statement[]; span: Span } & Named)
  | ({ kind: 'app'; body: Statement[]; span: Span } & Named)
  | ({ kind: 'tier'; args: Arg[]; span: Span } & Named)
  | ({ kind: 'sink'; body: Statement[]; span: Span } & Named)
  | { kind: 'session'; body: Statement[]; span: Span }
  | { kind: 'defaults'; body: Statement[]; span: Span }
  | { kind: 'match'; methods: Arg[]; pattern: Arg; host?: Arg; body: Statement[]; span: Span }
  | { kind: 'unknown'; statement: Statement; span: Span }

export interface ParsedFile {
  source: SourceFile
  declarations: Declaration[]
}

const kindOfToken: Record<string, ArgKind> = {
  String: 'string',
  Url: 'url',
  Date: 'date',
  Ip6: 'ip6',
  Ip4: 'ip4',
  Rate: 'rate',
  Duration: 'duration',
  Size: 'size',
  Percent: 'percent',
  Number: 'number',
  Path: 'path',
  Malformed: 'malformed',
  Word: 'word',
  Star: 'star',
  Comma: 'comma',
  Equals: 'equals',
  NotEquals: 'not-equals',
}

export function parseFile(source: SourceFile, bag: DiagnosticBag): ParsedFile {
  const out = parsePolicy(source.text)
  for (const e of out.lexErrors) {
    const ch = source.text[e.offset] ?? ''
    const message = ch === '"' ? 'unterminated string: the closing " is missing on this line' : `unexpected character ${JSON.stringify(ch)}`
    bag.error('syntax', message, spanOf(source, e.offset, ch === '"' ? 1 : e.length))
  }
  for (const e of out.parseErrors) {
    const tok = e.token
    const atEnd = Number.isNaN(tok.startOffset) || tok.tokenType.name === 'EOF'
    const at = atEnd ? endSpan(source, e) : spanOf(source, tok.startOffset, tok.image.length)
    const open = atEnd ? unclosedBrace(out.tokens) : undefined
    bag.error('syntax', syntaxMessage(e.message, tok), at, ...(open ? [{ message: "this '{' is never closed", span: tokenSpan(source, open) }] : []))
  }
  const declarations: Declaration[] = []
  for (const top of children(out.cst, 'topLevel')) {
    const decl = toDeclaration(source, top, bag)
    if (decl) declarations.push(decl)
  }
  return { source, declarations }
}

function unclosedBrace(toks: IToken[]): IToken | undefined {
  const open: IToken[] = []
  for (const t of toks) {
    if (t.tokenType.name === 'LBrace') open.push(t)
    else if (t.tokenType.name === 'RBrace') open.pop()
  }
  return open[0]
}

function reportStray(source: SourceFile, node: CstNode, bag: DiagnosticBag): void {
  for (const t of tokens(node, 'token')) {
    bag.error('syntax', `unexpected '${t.image}': a line starts with a name (a declaration or directive)`, tokenSpan(source, t))
  }
}

function endSpan(source: SourceFile, e: object): Span {
  const prev = (e as { previousToken?: IToken }).previousToken
  if (prev && !Number.isNaN(prev.startOffset)) return spanOf(source, prev.startOffset + prev.image.length, 1)
  return spanOf(source, Math.max(0, source.text.length - 1), 1)
}

// Chevrotain says "Expecting token of type --> RBrace <-- but found --> 'x' <--"; say it plainly.
function syntaxMessage(raw: string, tok: IToken): string {
  const found = tok.tokenType.name === 'EOF' || tok.image === '' ? 'the end of the file' : `'${tok.image}'`
  const single = /Expecting (?:token of type )?--> (.+?) <--/.exec(raw)
  if (single) return `expected ${labelOf(single[1]!)}, found ${found}`
  const expecting =
    /Expecting: (?:one of these possible Token sequences:|expecting at least one iteration which starts with one of these possible Token sequences::)?\s*([\s\S]*?)\s*but found:/.exec(
      raw,
    )
  if (expecting) {
    const options = [...new Set([...expecting[1]!.matchAll(/\[([^\]]+)\]/g)].map((m) => m[1]!.split(', ')[0]!.trim()))]
    if (options.length > 0) return `expected ${options.slice(0, 6).join(' or ')}, found ${found}`
  }
  return `unexpected ${found}`
}

const labels: Record<string, string> = {
  RBrace: '"}"',
  LBrace: '"{"',
  Word: 'a name',
  Path: 'a path pattern like /api/{id}',
  String: 'a "string"',
  Semicolon: '";"',
  Comma: '","',
}
function labelOf(name: string): string {
  return labels[name] ?? (name.startsWith('Kw_') ? `"${name.slice(3)}"` : name)
}

function children(node: CstNode, key: string): CstNode[] {
  return (node.children[key] as CstNode[] | undefined) ?? []
}
function tokens(node: CstNode, key: string): IToken[] {
  return ((node.children[key] as IToken[] | undefined) ?? []).filter((t) => !t.isInsertedInRecovery && !Number.isNaN(t.startOffset))
}
function tokenSpan(source: SourceFile, t: IToken): Span {
  return spanOf(source, t.startOffset, t.image.length)
}
function toArg(source: SourceFile, t: IToken): Arg {
  return { kind: kindOfToken[t.tokenType.name] ?? 'word', text: t.image, span: tokenSpan(source, t) }
}

function nodeSpan(source: SourceFile, node: CstNode): Span {
  const loc = node.location
  if (!loc || Number.isNaN(loc.startOffset)) return spanOf(source, 0, 1)
  const end = Number.isNaN(loc.endOffset ?? NaN) ? loc.startOffset : (loc.endOffset as number)
  return spanOf(source, loc.startOffset, end - loc.startOffset + 1)
}

function toDeclaration(source: SourceFile, top: CstNode, bag: DiagnosticBag): Declaration | undefined {
  const [kind, node] = Object.entries(top.children)[0] as [string, CstNode[]]
  const n = node[0]
  if (!n) return undefined
  const span = nodeSpan(source, n)
  const name = tokens(n, 'name')[0]
  const named = name ? { name: name.image, nameSpan: tokenSpan(source, name) } : undefined
  switch (kind) {
    case 'importDecl': {
      const str = tokens(n, 'String')[0]
      return str && { kind: 'import', path: unquote(str.image), pathSpan: tokenSpan(source, str), span }
    }
    case 'upstreamDecl':
    case 'appDecl':
    case 'sinkDecl':
      return named && { kind: kind.slice(0, -4) as 'upstream' | 'app' | 'sink', ...named, body: blockOf(source, n, bag), span }
    case 'tierDecl':
      return named && { kind: 'tier', ...named, args: argsOf(source, n), span }
    case 'sessionDecl':
    case 'defaultsDecl':
      return { kind: kind.slice(0, -4) as 'session' | 'defaults', body: blockOf(source, n, bag), span }
    case 'matchDecl': {
      const methods = tokens(children(n, 'methods')[0] ?? n, 'method').map((t) => toArg(source, t))
      const pattern = tokens(n, 'pattern')[0]
      const host = tokens(n, 'hostName')[0]
      if (!pattern || methods.length === 0) return undefined
      return { kind: 'match', methods, pattern: toArg(source, pattern), host: host && toArg(source, host), body: blockOf(source, n, bag), span }
    }
    case 'stray':
      reportStray(source, n, bag)
      return undefined
    case 'statement': {
      const statement = toStatement(source, n, bag)
      return statement && { kind: 'unknown', statement, span }
    }
  }
  return undefined
}

function argsOf(source: SourceFile, n: CstNode): Arg[] {
  const list = children(n, 'sameLineArguments')[0]
  if (!list) return []
  return children(list, 'argument').flatMap((a) => tokens(a, 'value').map((t) => toArg(source, t)))
}

function blockOf(source: SourceFile, n: CstNode, bag: DiagnosticBag): Statement[] {
  const block = children(n, 'block')[0]
  if (!block) return []
  for (const s of children(block, 'strayInBlock')) reportStray(source, s, bag)
  return children(block, 'statement').flatMap((s) => toStatement(source, s, bag) ?? [])
}

function toStatement(source: SourceFile, n: CstNode, bag: DiagnosticBag): Statement | undefined {
  const head = tokens(n, 'head')[0]
  if (!head) return undefined
  const words = [toArg(source, head), ...argsOf(source, n)]
  const block = children(n, 'block')[0]
  const last = words[words.length - 1]!
  const span = joinSpans(words[0]!.span, last.span)
  if (!block) return { words, span }
  const open = tokens(block, 'LBrace')[0]
  const close = tokens(block, 'RBrace')[0]
  const blockSpan = open && (close ? joinSpans(tokenSpan(source, open), tokenSpan(source, close)) : tokenSpan(source, open))
  return { words, block: blockOf(source, n, bag), blockSpan, span }
}

export function unquote(image: string): string {
  return image.slice(1, -1).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c === 't' ? '\t' : c))
}
