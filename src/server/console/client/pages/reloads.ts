// Reloads: the program version, the last reload's report, and a rejected reload's diagnostics
// as `gateway check` prints them. Reloading now needs the admin token.
import { get, messageOf, send, type ReloadChanges, type ReloadsAnswer } from '../api.ts'
import { alertBox, h, win, type Elem } from '../dom.ts'
import type { Page } from '../page.ts'
import { withToken } from '../token.ts'

const when = (iso: string) => new Date(iso).toLocaleString()

function changesList(c: ReloadChanges | null): Elem {
  if (!c) return h('p', { class: 'muted' }, 'no changes recorded')
  const parts = (['routes', 'upstreams', 'apps'] as const).flatMap((kind) =>
    (['added', 'removed', 'changed'] as const).flatMap((what) => (c[kind][what].length ? [`${kind} ${what}: ${c[kind][what].join(', ')}`] : [])),
  )
  return parts.length
    ? h(
        'ul',
        { class: 'plain' },
        parts.map((p) => h('li', {}, p)),
      )
    : h('p', { class: 'muted' }, 'nothing changed')
}

export const reloadsPage: Page = {
  title: 'Reloads',
  render(main) {
    const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'))
    const notice = h('div', { role: 'status', 'aria-live': 'polite' })
    const reload = h('button', { type: 'button', id: 'reload-now' }, 'Reload now')
    main.replaceChildren(
      h('h1', { tabindex: -1 }, 'Reloads'),
      h('div', { class: 'toolbar' }, reload, h('small', { class: 'hint' }, 'needs the admin token')),
      notice,
      body,
    )
    let alive = true
    const load = async () => {
      let a: ReloadsAnswer
      try {
        a = await get<ReloadsAnswer>('/reloads')
      } catch (err) {
        return void (alive && body.replaceChildren(alertBox(`The reload state could not be read: ${messageOf(err)}`)))
      }
      if (!alive) return
      const rejected = a.rejected
      body.replaceChildren(
        h(
          'dl',
          { class: 'facts' },
          h('dt', {}, 'Program version'),
          h('dd', { id: 'program-version' }, a.version),
          h('dt', {}, 'Loaded'),
          h('dd', {}, when(a.loaded_at)),
        ),
        h(
          'section',
          { 'aria-labelledby': 'last-title' },
          h('h2', { id: 'last-title' }, 'Last reload'),
          a.last
            ? [h('p', {}, `${when(a.last.at)}, by ${a.last.source}`), changesList(a.last.changes)]
            : h('p', { class: 'muted' }, 'none since start'),
        ),
        h(
          'section',
          { 'aria-labelledby': 'rejected-title', class: rejected ? 'rejected' : null },
          h('h2', { id: 'rejected-title' }, 'Rejected reload'),
          rejected
            ? [
                h(
                  'p',
                  { role: 'alert' },
                  `Since ${when(rejected.since)} (${rejected.reason}): the last good program (version ${a.version}) still serves.`,
                ),
                h('pre', { class: 'diagnostics', id: 'rejected-text' }, rejected.text),
              ]
            : h('p', { class: 'muted' }, 'none: the policies on disk are the ones serving'),
        ),
      )
    }
    reload.addEventListener('click', () => {
      notice.replaceChildren()
      withToken((token) => send<{ version: number }>('POST', '/reload', undefined, token)).then(
        (r) => {
          if (r) notice.textContent = `Reloaded: version ${r.version}.`
          void load()
        },
        (err: unknown) => {
          notice.replaceChildren(alertBox(`Reload refused: ${messageOf(err)}`))
          void load()
        },
      )
    })
    void load()
    const timer = win.setInterval(() => void load(), 5000)
    return () => {
      alive = false
      win.clearInterval(timer)
    }
  },
}
