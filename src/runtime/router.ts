// The route table: a segment trie. Lookup walks the request's segments once,
// trying literal, then typed, then plain parameter, then rest children, so its
// cost follows the path's depth, not the number of routes.
import type { CompiledRoute } from './context.ts'

export type PatternSegment =
  | { kind: 'literal'; value: string }
  | { kind: 'typed'; name: string; type: string; test: (seg: string) => boolean }
  | { kind: 'param'; name: string }
  | { kind: 'rest'; name: string }

interface Entry {
  route: CompiledRoute
  methods: ReadonlySet<string> | null
  host: string | null // exact host, `*.suffix`, or null for any
  names: string[] // capture names in segment order
}

class Node {
  literal = new Map<string, Node>()
  typed: { type: string; test: (s: string) => boolean; node: Node }[] = []
  param: Node | null = null
  rest: Entry[] = []
  entries: Entry[] = []
}

export type Lookup = { kind: 'found'; route: CompiledRoute; params: Record<string, string> } | { kind: 'method'; allow: string[] } | { kind: 'none' }

function hostRank(h: string | null): number {
  return h === null ? 2 : h.startsWith('*.') ? 1 : 0
}

function hostMatches(pattern: string | null, host: string): boolean {
  if (pattern === null) return true
  if (pattern.startsWith('*.')) return host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1
  return pattern === host
}

export class Router {
  private readonly root = new Node()

  add(route: CompiledRoute, segments: PatternSegment[]): void {
    let node = this.root
    const names: string[] = []
    const entry = (): Entry => ({ route, methods: route.methods && new Set(route.methods), host: route.host, names })
    for (const seg of segments) {
      if (seg.kind === 'literal') {
        let next = node.literal.get(seg.value)
        if (!next) node.literal.set(seg.value, (next = new Node()))
        node = next
      } else if (seg.kind === 'typed') {
        names.push(seg.name)
        let t = node.typed.find((x) => x.type === seg.type)
        if (!t) node.typed.push((t = { type: seg.type, test: seg.test, node: new Node() }))
        node = t.node
      } else if (seg.kind === 'param') {
        names.push(seg.name)
        node = node.param ??= new Node()
      } else {
        names.push(seg.name)
        insertSorted(node.rest, entry())
        return
      }
    }
    insertSorted(node.entries, entry())
  }

  lookup(method: string, host: string, segments: string[]): Lookup {
    const values: string[] = []
    const allow = new Set<string>()
    const hit = this.walk(this.root, 0, segments, values, method, host, allow)
    if (hit) {
      const params: Record<string, string> = {}
      hit.entry.names.forEach((n, i) => (params[n] = hit.values[i]!))
      return { kind: 'found', route: hit.entry.route, params }
    }
    return allow.size > 0 ? { kind: 'method', allow: [...allow].sort() } : { kind: 'none' }
  }

  private walk(
    node: Node,
    i: number,
    segs: string[],
    values: string[],
    method: string,
    host: string,
    allow: Set<string>,
  ): { entry: Entry; values: string[] } | null {
    if (i === segs.length) {
      const e = pick(node.entries, method, host, allow)
      if (e) return { entry: e, values: [...values] }
    } else {
      const seg = segs[i]!
      const lit = node.literal.get(seg)
      if (lit) {
        const r = this.walk(lit, i + 1, segs, values, method, host, allow)
        if (r) return r
      }
      for (const t of node.typed) {
        if (!t.test(seg)) continue
        values.push(seg)
        const r = this.walk(t.node, i + 1, segs, values, method, host, allow)
        values.pop()
        if (r) return r
      }
      if (node.param) {
        values.push(seg)
        const r = this.walk(node.param, i + 1, segs, values, method, host, allow)
        values.pop()
        if (r) return r
      }
    }
    const e = pick(node.rest, method, host, allow)
    return e ? { entry: e, values: [...values, segs.slice(i).join('/')] } : null
  }
}

// Per node, entries are ordered exact host, wildcard host, any host; the first
// whose host and method match wins. Host matches with another method feed `Allow`.
function pick(entries: Entry[], method: string, host: string, allow: Set<string>): Entry | null {
  for (const e of entries) {
    if (!hostMatches(e.host, host)) continue
    if (e.methods === null || e.methods.has(method)) return e
    for (const m of e.methods) allow.add(m)
  }
  return null
}

function insertSorted(list: Entry[], e: Entry): void {
  const at = list.findIndex((x) => hostRank(x.host) > hostRank(e.host))
  if (at === -1) list.push(e)
  else list.splice(at, 0, e)
}
