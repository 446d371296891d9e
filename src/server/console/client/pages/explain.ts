// Explain: what `gateway explain` shows, from a form — the route matched and each directive's
// decision, stage by stage, for a method, path, headers, app, client address and body.
import { STAGES } from '../../../../runtime/context.ts'
import { get, messageOf, placeOf, send, sourceHref, type AppsAnswer, type DecisionTrace, type ExplainAnswer } from '../api.ts'
import { alertBox, h, table, type Elem, type Field } from '../dom.ts'
import type { Page } from '../page.ts'

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']
const MARK: Record<string, string> = { passed: '✓', answered: '→', refused: '✗', failed: '✗', skipped: '–', 'not reached': '·' }

function where(at: string): Elem | string {
  const place = placeOf(at)
  return place ? h('a', { href: sourceHref(place.file, place.line) }, at.split('/').pop()!) : at
}

function traceView(t: DecisionTrace, text: string): Elem {
  const decisive = t.steps.find((s) => s.outcome === 'refused' || s.outcome === 'failed') ?? t.steps.find((s) => s.outcome === 'answered')
  const rows = [
    ...t.steps.map((s) => ({
      stage: s.stage,
      outcome: s.outcome,
      directive: s.directive,
      at: s.at,
      why:
        [s.status, s.gatewayError].filter((x) => x !== undefined).join(' ') +
        (s.detail ? `${s.status !== undefined || s.gatewayError ? ': ' : ''}${s.detail}` : ''),
    })),
    ...t.notReached.map((s) => ({ stage: s.stage, outcome: 'not reached', directive: s.directive, at: s.at, why: '' })),
  ]
  rows.sort((a, b) => STAGES.indexOf(a.stage) - STAGES.indexOf(b.stage))
  return h(
    'section',
    { 'aria-labelledby': 'explain-result-title', id: 'explain-result' },
    h('h2', { id: 'explain-result-title', tabindex: -1 }, `Answer ${t.status}${t.gatewayError ? ` ${t.gatewayError}` : ''}`),
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'Request'),
      h('dd', {}, h('code', {}, `${t.request.method} ${t.request.target}`)),
      h('dt', {}, 'Route'),
      h('dd', {}, t.route ? [h('code', {}, t.route.id), ' ', where(t.route.location)] : `none: ${t.reason ?? 'no route matched'}`),
      decisive
        ? [
            h('dt', {}, decisive.outcome === 'answered' ? 'Answered by' : 'Refused by'),
            h(
              'dd',
              { id: 'explain-decisive' },
              h('code', {}, decisive.directive),
              ' at ',
              where(decisive.at),
              decisive.detail ? ` — ${decisive.detail}` : '',
            ),
          ]
        : null,
    ),
    table(
      'Decisions, stage by stage',
      ['Stage', 'Outcome', 'Directive', 'Where', 'What happened'],
      rows.map((r) =>
        h(
          'tr',
          { class: `outcome-${r.outcome.replace(' ', '-')}` },
          h('td', {}, r.stage),
          h('td', {}, h('span', { 'aria-hidden': 'true' }, `${MARK[r.outcome] ?? ''} `), r.outcome),
          h('td', {}, h('code', {}, r.directive)),
          h('td', {}, where(r.at)),
          h('td', {}, r.why),
        ),
      ),
      { id: 'explain-steps' },
    ),
    (t.forwarded ?? []).map((f) => h('p', {}, `Upstream ${f.upstream} would receive `, h('code', {}, `${f.method} ${f.target}`))),
    h('details', {}, h('summary', {}, 'As gateway explain prints it'), h('pre', { class: 'trace-text' }, text)),
  )
}

export const explainPage: Page = {
  title: 'Explain',
  render(main) {
    const appSelect = h(
      'select',
      { id: 'explain-app', name: 'app', 'aria-describedby': 'explain-app-hint' },
      h('option', { value: '' }, '(no credentials)'),
    ) as Field
    const form = h(
      'form',
      { id: 'explain-form', 'aria-labelledby': 'explain-title' },
      h(
        'div',
        { class: 'grid-form' },
        h('label', { for: 'explain-method' }, 'Method'),
        h(
          'select',
          { id: 'explain-method', name: 'method' },
          METHODS.map((m) => h('option', { value: m }, m)),
        ),
        h('label', { for: 'explain-path' }, 'Path'),
        h('input', { id: 'explain-path', name: 'path', required: true, value: '/', autocomplete: 'off', spellcheck: 'false' }),
        h('label', { for: 'explain-headers' }, 'Headers'),
        h('textarea', { id: 'explain-headers', name: 'headers', rows: 3, 'aria-describedby': 'explain-headers-hint', spellcheck: 'false' }),
        h('small', { id: 'explain-headers-hint', class: 'hint' }, 'one Name: value a line'),
        h('label', { for: 'explain-app' }, 'As app'),
        appSelect,
        h('small', { id: 'explain-app-hint', class: 'hint' }, 'sends its credentials; explain knows the file apps only'),
        h('label', { for: 'explain-ip' }, 'Client IP'),
        h('input', { id: 'explain-ip', name: 'ip', autocomplete: 'off', placeholder: '127.0.0.1' }),
        h('label', { for: 'explain-body' }, 'Body'),
        h('textarea', { id: 'explain-body', name: 'body', rows: 3, spellcheck: 'false' }),
      ),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Explain')),
    )
    const result = h('div', { 'aria-live': 'polite' })
    main.replaceChildren(
      h('h1', { tabindex: -1, id: 'explain-title' }, 'Explain'),
      h('p', { class: 'hint' }, 'Runs the request through the loaded policies offline: no upstream is called and nothing changes.'),
      form,
      result,
    )
    let alive = true
    get<AppsAnswer>('/apps').then(
      (a) => alive && appSelect.append(...a.apps.filter((app) => app.source === 'file').map((app) => h('option', { value: app.name }, app.name))),
      () => undefined,
    )
    const value = (id: string) => (form.querySelector(`#${id}`) as Field).value
    form.addEventListener('submit', (e) => {
      e.preventDefault()
      const headers: Record<string, string> = {}
      for (const line of value('explain-headers').split('\n')) {
        if (!line.trim()) continue
        const colon = line.indexOf(':')
        if (colon <= 0) return void result.replaceChildren(alertBox(`Headers: '${line.trim()}' is not Name: value`))
        headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim()
      }
      const path = value('explain-path').trim()
      if (!path.startsWith('/')) return void result.replaceChildren(alertBox('Path: it starts with /'))
      const body: Record<string, unknown> = { method: value('explain-method'), path }
      if (Object.keys(headers).length) body.headers = headers
      if (value('explain-app')) body.app = value('explain-app')
      if (value('explain-ip').trim()) body.ip = value('explain-ip').trim()
      if (value('explain-body')) body.body = value('explain-body')
      result.replaceChildren(h('p', { class: 'muted' }, 'Explaining…'))
      send<ExplainAnswer>('POST', '/explain', body).then(
        (a) => {
          if (!alive) return
          result.replaceChildren(traceView(a.trace, a.text))
          result.querySelector('#explain-result-title')?.focus()
        },
        (err: unknown) => alive && result.replaceChildren(alertBox(`Explain failed: ${messageOf(err)}`)),
      )
    })
    return () => void (alive = false)
  },
}
