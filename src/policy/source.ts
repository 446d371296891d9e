// A policy source file and the positions inside it.
export interface Span {
  file: SourceFile
  offset: number
  length: number
}

export class SourceFile {
  private readonly lineStarts: number[] = [0]

  constructor(
    readonly path: string, // as shown in diagnostics
    readonly absPath: string,
    readonly text: string,
  ) {
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) this.lineStarts.push(i + 1)
  }

  // 1-based line and column; the column counts characters (code points), not UTF-16 units.
  position(offset: number): { line: number; col: number } {
    let lo = 0
    let hi = this.lineStarts.length - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1
      if (this.lineStarts[mid]! <= offset) lo = mid
      else hi = mid - 1
    }
    const start = this.lineStarts[lo]!
    return { line: lo + 1, col: [...this.text.slice(start, offset)].length + 1 }
  }

  lineText(line: number): string {
    const start = this.lineStarts[line - 1] ?? this.text.length
    const next = this.lineStarts[line]
    return this.text.slice(start, next === undefined ? undefined : next - 1).replace(/\r$/, '')
  }
}

export function spanOf(file: SourceFile, offset: number, length: number): Span {
  return { file, offset, length: Math.max(1, length) }
}

export function joinSpans(a: Span, b: Span): Span {
  const end = Math.max(a.offset + a.length, b.offset + b.length)
  return { file: a.file, offset: a.offset, length: end - a.offset }
}

export function describeSpan(span: Span): string {
  const { line, col } = span.file.position(span.offset)
  return `${span.file.path}:${line}:${col}`
}
