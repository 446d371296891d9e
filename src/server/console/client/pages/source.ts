// A policy file with one line highlighted (linked from routes, explain traces and reloads).
import { get, messageOf, type SourceAnswer } from '../api.ts'
import { alertBox, h } from '../dom.ts'
import type { Page } from '../page.ts'

export const sourcePage: Page = {
  title: 'Policy source',
  render(main, params) {
    const file = params.get('file') ?? ''
    const line = Number(params.get('line') ?? '1') || 1
    const heading = h('h1', { tabindex: -1 }, h('code', {}, file || 'no file'))
    const back = h('p', {}, h('a', { href: '#/routes' }, '← Routes'))
    main.replaceChildren(back, heading, h('p', { class: 'muted', role: 'status' }, 'Loading…'))
    if (!file) return void main.replaceChildren(back, heading, alertBox('No file was named (…#/source?file=F&line=N).'))
    let alive = true
    get<SourceAnswer>(`/source?file=${encodeURIComponent(file)}&line=${line}`).then(
      (src) => {
        if (!alive) return
        heading.replaceChildren(h('code', {}, src.file))
        const rows = src.lines.map((text, i) => {
          const n = i + 1
          const here = n === line
          return h(
            'li',
            { id: `L${n}`, class: here ? 'hl' : null, 'aria-current': here ? 'location' : null, tabindex: here ? -1 : null },
            h('span', { class: 'ln', 'aria-hidden': 'true' }, n),
            h('code', {}, text || ' '),
          )
        })
        const list = h('ol', { class: 'source', 'aria-label': `${src.file}, line ${line} highlighted` }, rows)
        main.replaceChildren(back, heading, h('p', { class: 'muted' }, `Line ${line} of ${src.lines.length}`), h('div', { class: 'scroll' }, list))
        const target = rows[line - 1]
        if (target) {
          target.scrollIntoView({ block: 'center' })
          target.focus({ preventScroll: true })
        }
      },
      (err: unknown) => alive && main.replaceChildren(back, heading, alertBox(`The source could not be read: ${messageOf(err)}`)),
    )
    return () => void (alive = false)
  },
}
