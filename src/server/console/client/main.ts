// The console's shell: hash routing between the pages (#/routes, #/apps …), the nav's current
// page, and the admin token's state in the header.
import { byId, doc, h, win } from './dom.ts'
import type { Page } from './page.ts'
import { appsPage } from './pages/apps.ts'
import { explainPage } from './pages/explain.ts'
import { reloadsPage } from './pages/reloads.ts'
import { routesPage } from './pages/routes.ts'
import { sourcePage } from './pages/source.ts'
import { trafficPage } from './pages/traffic.ts'
import { upstreamsPage } from './pages/upstreams.ts'
import { askToken, currentToken, forgetToken, onTokenChange } from './token.ts'

const pages: Record<string, Page> = {
  routes: routesPage,
  apps: appsPage,
  traffic: trafficPage,
  upstreams: upstreamsPage,
  reloads: reloadsPage,
  explain: explainPage,
  source: sourcePage,
}

let leave: (() => void) | void = undefined
let first = true

function show(): void {
  const hash = win.location.hash
  // In-page anchors (the skip link) are not pages.
  if (hash && !hash.startsWith('#/')) return
  const [name = 'routes', query = ''] = hash.slice(2).split('?')
  const page = pages[name] ?? routesPage
  leave?.()
  const main = byId('main')
  doc.title = `${page.title} · Portcullis console`
  const nav = byId('nav').querySelectorAll('a')
  for (let i = 0; i < nav.length; i++) {
    const a = nav[i]!
    if (a.getAttribute('href') === `#/${name}` || (!pages[name] && a.getAttribute('href') === '#/routes')) a.setAttribute('aria-current', 'page')
    else a.removeAttribute('aria-current')
  }
  leave = page.render(main, new URLSearchParams(query))
  // After a navigation the page's heading takes focus, so keyboard and screen reader users
  // start there (not on the first load: the browser's own start is kept).
  if (!first) main.querySelector('h1')?.focus()
  first = false
}

const focusTokenButton = () => byId(currentToken() ? 'forget-token' : 'enter-token').focus()

function tokenState(): void {
  const box = byId('token-state')
  const has = currentToken() !== null
  box.replaceChildren(
    h('span', { class: 'muted' }, has ? 'Admin token kept for this tab' : 'Read-only (no admin token)'),
    has
      ? h('button', { type: 'button', id: 'forget-token', onclick: () => (forgetToken(), byId('enter-token').focus()) }, 'Forget token')
      : h('button', { type: 'button', id: 'enter-token', onclick: () => void askToken().then(focusTokenButton) }, 'Enter token'),
  )
}

onTokenChange(tokenState)
tokenState()
win.addEventListener('hashchange', show)
show()
