// The part of the browser's DOM the console touches, typed here: the project's tsconfig has no
// DOM lib (it clashes with bun-types on the server side), so the console declares what it uses.

export interface Elem extends EventTarget {
  id: string
  className: string
  textContent: string | null
  hidden: boolean
  tabIndex: number
  readonly clientWidth: number
  readonly isConnected: boolean
  readonly classList: { add(...t: string[]): void; remove(...t: string[]): void; toggle(t: string, force?: boolean): boolean }
  setAttribute(name: string, value: string): void
  getAttribute(name: string): string | null
  removeAttribute(name: string): void
  append(...nodes: (Elem | string)[]): void
  replaceChildren(...nodes: (Elem | string)[]): void
  replaceWith(...nodes: (Elem | string)[]): void
  querySelector(selector: string): Elem | null
  querySelectorAll(selector: string): ArrayLike<Elem>
  focus(options?: { preventScroll?: boolean }): void
  scrollIntoView(options?: { block?: 'start' | 'center' | 'end' | 'nearest' }): void
}

export interface Field extends Elem {
  value: string
  disabled: boolean
  readonly name: string
  select?(): void
}

export interface Dialog extends Elem {
  readonly open: boolean
  returnValue: string
  showModal(): void
  close(returnValue?: string): void
}

interface Doc {
  title: string
  getElementById(id: string): Elem | null
  createElement(tag: string): Elem
  createElementNS(ns: string, tag: string): Elem
}

interface Win extends EventTarget {
  readonly location: { hash: string }
  readonly sessionStorage: { getItem(k: string): string | null; setItem(k: string, v: string): void; removeItem(k: string): void }
  setInterval(fn: () => void, ms: number): number
  clearInterval(id: number): void
}

export const doc = (globalThis as unknown as { document: Doc }).document
export const win = globalThis as unknown as Win

type Listener = (e: Event) => void
export type Attrs = Record<string, string | number | boolean | null | undefined | Listener>
export type Child = Elem | string | number | null | undefined | false | Child[]

function build(el: Elem, attrs: Attrs, children: Child[]): Elem {
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === 'function') el.addEventListener(k.slice(2), v)
    else if (v === true) el.setAttribute(k, '')
    else if (v !== false && v !== null && v !== undefined) el.setAttribute(k, String(v))
  }
  const add = (c: Child): void => {
    if (Array.isArray(c)) c.forEach(add)
    else if (c !== null && c !== undefined && c !== false) el.append(typeof c === 'number' ? String(c) : c)
  }
  children.forEach(add)
  return el
}

// An HTML element: `h('a', { href: '#/routes', onclick: go }, 'Routes')`. Text is always text.
export const h = (tag: string, attrs: Attrs = {}, ...children: Child[]): Elem => build(doc.createElement(tag), attrs, children)

// An SVG element, the same way.
export const s = (tag: string, attrs: Attrs = {}, ...children: Child[]): Elem =>
  build(doc.createElementNS('http://www.w3.org/2000/svg', tag), attrs, children)

export function byId<T extends Elem = Elem>(id: string): T {
  const el = doc.getElementById(id)
  if (!el) throw new Error(`the console page has no #${id}`)
  return el as T
}

// A table in a region that scrolls sideways on a narrow window (and can be scrolled by keyboard).
// Each cell carries its column's name, so a narrow window can show rows as cards.
export function table(label: string, head: string[], rows: Elem[], attrs: Attrs = {}): Elem {
  for (const row of rows) {
    const cells = row.querySelectorAll(':scope > td, :scope > th')
    for (let i = 0; i < cells.length; i++) if (head[i]) cells[i]!.setAttribute('data-label', head[i]!)
  }
  return h(
    'div',
    { class: 'scroll', role: 'region', 'aria-label': label, tabindex: 0 },
    h(
      'table',
      { class: 'cards', ...attrs },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          head.map((c) => h('th', { scope: 'col' }, c)),
        ),
      ),
      h('tbody', {}, rows),
    ),
  )
}

export const alertBox = (message: string): Elem => h('p', { class: 'alert', role: 'alert' }, message)

// Server-sent events (bun-types declares EventSource only where the DOM lib is loaded).
export interface EventStream extends EventTarget {
  readonly readyState: number
  close(): void
}
export const openEventStream = (url: string): EventStream =>
  new (globalThis as unknown as { EventSource: new (url: string) => EventStream }).EventSource(url)
