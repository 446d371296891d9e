// The policy grammar: declarations at the top, generic statements inside blocks.
// A statement is a head word followed by arguments on the same line; what the
// words mean is decided later by the directive registry, not here.
import { CstParser, type CstNode, type IToken, type ILexingError, type IRecognitionException } from 'chevrotain'
import * as T from './tokens.ts'

const decl = T.declarationTokens

export class PolicyParser extends CstParser {
  constructor() {
    super(T.allTokens, { recoveryEnabled: true, maxLookahead: 2, nodeLocationTracking: 'onlyOffset' })
    this.performSelfAnalysis()
  }

  public policyFile = this.RULE('policyFile', () => {
    this.MANY(() => this.SUBRULE(this.topLevel))
  })

  private topLevel = this.RULE('topLevel', () => {
    this.OR({
      IGNORE_AMBIGUITIES: true,
      DEF: [
        // One rule per declaration keyword, named `<keyword>Decl`.
        ...T.DECLARATION_KEYWORDS.map((w) => ({ ALT: () => this.SUBRULE(this[`${w}Decl`]) })),
        // Anything else is read as a statement so the checker can say "unknown declaration, did you mean".
        { ALT: () => this.SUBRULE(this.statement) },
        // A stray token is kept (and reported) so one bad line never hides the next.
        { ALT: () => this.SUBRULE(this.stray) },
      ],
    })
  })

  private importDecl = this.RULE('importDecl', () => {
    this.CONSUME(decl.import)
    this.CONSUME(T.StringLit)
    this.OPTION(() => this.CONSUME(T.Semicolon))
  })

  private upstreamDecl = this.RULE('upstreamDecl', () => {
    this.CONSUME(decl.upstream)
    this.CONSUME(T.Word, { LABEL: 'name' })
    this.SUBRULE(this.block)
  })

  private appDecl = this.RULE('appDecl', () => {
    this.CONSUME(decl.app)
    this.CONSUME(T.Word, { LABEL: 'name' })
    this.SUBRULE(this.block)
  })

  private tierDecl = this.RULE('tierDecl', () => {
    const kw = this.CONSUME(decl.tier)
    this.CONSUME(T.Word, { LABEL: 'name' })
    this.SUBRULE(this.sameLineArguments, { ARGS: [kw] })
    this.OPTION(() => this.CONSUME(T.Semicolon))
  })

  private sinkDecl = this.RULE('sinkDecl', () => {
    this.CONSUME(decl.sink)
    this.CONSUME(T.Word, { LABEL: 'name' })
    this.SUBRULE(this.block)
  })

  private sessionDecl = this.RULE('sessionDecl', () => {
    this.CONSUME(decl.session)
    this.SUBRULE(this.block)
  })

  private defaultsDecl = this.RULE('defaultsDecl', () => {
    this.CONSUME(decl.defaults)
    this.SUBRULE(this.block)
  })

  private matchDecl = this.RULE('matchDecl', () => {
    this.CONSUME(decl.match)
    this.SUBRULE(this.methods)
    this.CONSUME(T.PathLit, { LABEL: 'pattern' })
    this.OPTION(() => {
      this.CONSUME(T.HostKw)
      this.OR([{ ALT: () => this.CONSUME2(T.Word, { LABEL: 'hostName' }) }, { ALT: () => this.CONSUME(T.Ip4Lit, { LABEL: 'hostName' }) }])
    })
    this.SUBRULE(this.block)
  })

  private methods = this.RULE('methods', () => {
    this.OR([
      { ALT: () => this.CONSUME(T.Star, { LABEL: 'method' }) },
      {
        ALT: () => {
          this.CONSUME(T.Word, { LABEL: 'method' })
          this.MANY(() => {
            this.CONSUME(T.Comma)
            this.CONSUME2(T.Word, { LABEL: 'method' })
          })
        },
      },
    ])
  })

  private block = this.RULE('block', () => {
    this.CONSUME(T.LBrace)
    this.MANY(() => this.OR([{ ALT: () => this.SUBRULE(this.statement) }, { ALT: () => this.SUBRULE(this.strayInBlock) }]))
    this.CONSUME(T.RBrace)
  })

  private stray = this.RULE('stray', () => {
    this.OR([...T.strayTokens, T.RBrace].map((tok) => ({ ALT: () => this.CONSUME(tok, { LABEL: 'token' }) })))
  })

  private strayInBlock = this.RULE('strayInBlock', () => {
    this.OR(T.strayTokens.map((tok) => ({ ALT: () => this.CONSUME(tok, { LABEL: 'token' }) })))
  })

  private statement = this.RULE('statement', () => {
    const head = this.CONSUME(T.Word, { LABEL: 'head' })
    this.SUBRULE(this.sameLineArguments, { ARGS: [head] })
    this.OPTION(() => this.CONSUME(T.Semicolon))
    this.OPTION2({
      GATE: () => this.LA(1).startLine === head.startLine,
      DEF: () => this.SUBRULE(this.block),
    })
  })

  // Arguments run to the end of the line that holds `start` (or to `;`, `{` or `}`).
  private sameLineArguments = this.RULE('sameLineArguments', (start?: IToken) => {
    this.MANY({
      GATE: () => start === undefined || this.LA(1).startLine === start.startLine,
      DEF: () => this.SUBRULE(this.argument),
    })
  })

  private argument = this.RULE('argument', () => {
    this.OR(T.argumentTokens.map((tok) => ({ ALT: () => this.CONSUME(tok, { LABEL: 'value' }) })))
  })
}

let shared: PolicyParser | undefined
export function policyParser(): PolicyParser {
  shared ??= new PolicyParser()
  return shared
}

export interface ParseOutput {
  cst: CstNode
  tokens: IToken[]
  lexErrors: ILexingError[]
  parseErrors: IRecognitionException[]
}

export function parsePolicy(text: string): ParseOutput {
  const lexed = T.PolicyLexer.tokenize(text)
  const parser = policyParser()
  parser.input = lexed.tokens
  const cst = parser.policyFile()
  return { cst, tokens: lexed.tokens, lexErrors: lexed.errors, parseErrors: parser.errors }
}
