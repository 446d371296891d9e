// Routes: the compiled route table, searchable; each route links to its policy source, and
// shows its block as written (directives with their arguments) and its lifecycle.
import { STAGES } from '../../../../runtime/context.ts'
import { get, messageOf, placeOf, sourceHref, type RouteRow, type RoutesAnswer } from '../api.ts'
import { alertBox, h, table, type Elem, type Field } from '../dom.ts'
import type { Page } from '../page.ts'
import { blockAt, forgetSources, lifecycleOf, sourceOf } from '../policy-source.ts'

interface Chip {
  name: string
  el: Elem
}

function stagesCell(r: RouteRow, chips: Chip[]): Elem {
  const used = STAGES.filter((st) => r.stages[st].length)
  const chip = (name: string) => {
    const el = h('code', {}, name)
    chips.push({ name, el })
    return h('li', {}, el)
  }
  return h(
    'dl',
    { class: 'stages' },
    used.map((st) => [h('dt', {}, st), h('dd', {}, h('ul', { class: 'chips' }, r.stages[st].map(chip)))]),
  )
}

// The route's own directives as written, arguments and all: each of its block's lines goes to
// the last unmatched directive of that name (defaults come first in a stage, the route's own
// last). Directives from `defaults` keep their names.
function withArguments(chips: readonly Chip[], block: readonly string[], first: number): void {
  const lines = block.slice(1).map((text, i) => ({ text: text.replace(/\s+#.*$/, '').trim(), n: first + 1 + i, used: false }))
  for (const chip of [...chips].reverse()) {
    const line = [...lines].reverse().find((l) => !l.used && (l.text === chip.name || l.text.startsWith(`${chip.name} `)))
    if (!line) continue
    line.used = true
    chip.el.textContent = line.text
    chip.el.setAttribute('title', `line ${line.n}`)
  }
}

function haystack(r: RouteRow, block: string): string {
  return [r.method, r.host ?? '', r.pattern, r.location, ...STAGES.flatMap((st) => r.stages[st]), block].join(' ').toLowerCase()
}

export const routesPage: Page = {
  title: 'Routes',
  render(main) {
    forgetSources()
    const status = h('p', { class: 'muted', role: 'status', 'aria-live': 'polite' }, 'Loading the route table…')
    const search = h('input', { id: 'route-search', type: 'search', autocomplete: 'off', placeholder: 'method, path, directive, file…' }) as Field
    const body = h('div')
    main.replaceChildren(
      h('h1', { tabindex: -1 }, 'Routes'),
      h('div', { class: 'toolbar' }, h('label', { for: 'route-search' }, 'Search routes'), search),
      status,
      body,
    )
    let alive = true
    void (async () => {
      let answer: RoutesAnswer
      try {
        answer = await get<RoutesAnswer>('/routes')
      } catch (err) {
        status.replaceWith(alertBox(`The route table could not be read: ${messageOf(err)}`))
        return
      }
      if (!alive) return
      const rows = answer.routes.map((r) => {
        const place = placeOf(r.location)
        const chips: Chip[] = []
        const lifecycle = h('td', { class: 'lifecycle' }, '…')
        const written = h('pre', { class: 'block' }, 'loading…')
        const where = place ? `${place.file.split('/').pop()}:${place.line}` : r.location
        const tr = h(
          'tr',
          { 'data-route': `${r.method} ${r.pattern}` },
          h('td', {}, h('span', { class: 'method' }, r.method)),
          h('td', {}, r.host ?? h('span', { class: 'muted' }, 'any')),
          h('td', {}, h('code', {}, r.pattern)),
          h(
            'td',
            {},
            place ? h('a', { href: sourceHref(place.file, place.line), title: r.location }, where) : where,
            h('details', {}, h('summary', {}, 'as written'), written),
          ),
          h('td', {}, stagesCell(r, chips)),
          lifecycle,
        )
        const row = { tr, text: haystack(r, '') }
        if (!place) {
          lifecycle.textContent = 'unknown'
          written.textContent = 'no source location'
          return row
        }
        sourceOf(place.file, place.line).then(
          (src) => {
            const block = blockAt(src.lines, place.line)
            const life = lifecycleOf(block.lines)
            withArguments(chips, block.lines, block.first)
            lifecycle.replaceChildren(h('span', { class: `badge life-${life.split(' ')[0]}` }, life))
            written.textContent = block.lines.map((l, i) => `${String(block.first + i).padStart(4)}  ${l}`).join('\n')
            row.text = haystack(r, block.lines.join(' '))
          },
          (err: unknown) => {
            lifecycle.textContent = r.stages.access.includes('status') ? 'see source' : 'active'
            written.textContent = `the source could not be read: ${messageOf(err)}`
          },
        )
        return row
      })
      const filter = () => {
        const words = search.value.toLowerCase().split(/\s+/).filter(Boolean)
        let shown = 0
        for (const r of rows) {
          r.tr.hidden = !words.every((w) => r.text.includes(w))
          if (!r.tr.hidden) shown++
        }
        status.textContent = `Program version ${answer.version}: ${words.length ? `${shown} of ${rows.length}` : rows.length} routes`
      }
      search.addEventListener('input', filter)
      body.replaceChildren(
        table(
          'Route table',
          ['Method', 'Host', 'Pattern', 'Source', 'Stages and directives', 'Lifecycle'],
          rows.map((r) => r.tr),
          { id: 'routes-table' },
        ),
      )
      filter()
    })()
    return () => void (alive = false)
  },
}
