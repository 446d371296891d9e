// Upstreams: each named upstream's targets with health, attempts, failures, retries and
// ejections, refreshed every 2 s while shown.
import { get, messageOf, type TargetView, type UpstreamsAnswer } from '../api.ts'
import { alertBox, h, table, win, type Elem } from '../dom.ts'
import type { Page } from '../page.ts'

function health(t: TargetView): Elem {
  const [word, cls] = t.ejected ? ['ejected', 'bad'] : t.healthy ? ['healthy', 'good'] : ['unhealthy', 'bad']
  return h('span', { class: `badge ${cls}` }, word)
}

export const upstreamsPage: Page = {
  title: 'Upstreams',
  render(main) {
    const body = h('div', {}, h('p', { class: 'muted' }, 'Loading upstreams…'))
    const updated = h('p', { class: 'muted' })
    main.replaceChildren(h('h1', { tabindex: -1 }, 'Upstreams'), updated, body)
    let alive = true
    const load = async () => {
      let answer: UpstreamsAnswer
      try {
        answer = await get<UpstreamsAnswer>('/upstreams')
      } catch (err) {
        return void (alive && body.replaceChildren(alertBox(`The upstreams could not be read: ${messageOf(err)}`)))
      }
      if (!alive) return
      updated.textContent = `Updated ${new Date().toLocaleTimeString()} (every 2 s).`
      if (!answer.upstreams.length) return void body.replaceChildren(h('p', { class: 'muted' }, 'The policies declare no named upstream.'))
      body.replaceChildren(
        ...answer.upstreams.map((u) =>
          h(
            'section',
            { 'aria-labelledby': `up-${u.name}`, 'data-upstream': u.name },
            h('h2', { id: `up-${u.name}` }, u.name),
            table(
              `Targets of ${u.name}`,
              ['Target', 'Health', 'Active', 'Attempts', 'Failures', 'Retries', 'Ejected'],
              u.targets.map((t) =>
                h(
                  'tr',
                  {},
                  h('th', { scope: 'row' }, h('code', {}, t.url)),
                  h('td', {}, health(t)),
                  h('td', { class: 'num' }, t.active),
                  h('td', { class: 'num' }, t.attempts),
                  h('td', { class: 'num' }, t.failures),
                  h('td', { class: 'num' }, t.retries),
                  h('td', {}, t.ejected ? 'yes' : 'no'),
                ),
              ),
            ),
          ),
        ),
      )
    }
    void load()
    const timer = win.setInterval(() => void load(), 2000)
    return () => {
      alive = false
      win.clearInterval(timer)
    }
  },
}
