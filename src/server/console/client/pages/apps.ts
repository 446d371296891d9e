// Apps: file and store apps (never a secret: the API has none to give); store apps can be
// added, edited (replaced) and revoked with the admin token.
import { get, messageOf, send, type AppView, type AppsAnswer, type Window_ } from '../api.ts'
import { alertBox, byId, h, table, type Dialog, type Elem, type Field } from '../dom.ts'
import type { Page } from '../page.ts'
import { currentToken, withToken } from '../token.ts'

const day = (iso: string | null) => (iso ? iso.slice(0, 10) : null)

function windowText(label: string, w: Window_): string {
  const parts = [label]
  if (w.from) parts.push(`from ${day(w.from)}`)
  if (w.until) parts.push(`until ${day(w.until)}`)
  parts.push(w.valid ? '(valid now)' : '(not valid now)')
  return parts.join(' ')
}

function credentials(a: AppView): Elem {
  const items: string[] = [
    ...a['api-keys'].map((w) => windowText('API key', w)),
    ...a.secrets.map((w) => windowText('secret', w)),
    ...(a['public-key'] ? [`public key (${a['public-key']})`] : []),
    ...(a['cert-sha256'].length ? [`${a['cert-sha256'].length} client certificate${a['cert-sha256'].length > 1 ? 's' : ''}`] : []),
    ...(a['jwt-subject'] ? [`JWT subject ${a['jwt-subject']}`] : []),
    ...Object.entries(a.meta).map(([k, v]) => `meta ${k} = ${v}`),
  ]
  return items.length
    ? h(
        'ul',
        { class: 'plain' },
        items.map((t) => h('li', {}, t)),
      )
    : h('span', { class: 'muted' }, 'none')
}

const lines = (text: string) =>
  text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)

// A credential as PUT takes it: the value, with its window when one is given.
function credential(value: string, from: string, until: string): unknown {
  if (!from && !until) return value
  return { value, ...(from ? { from } : {}), ...(until ? { until } : {}) }
}

const field = (id: string, label: string, attrs: Record<string, string | boolean> = {}, hint?: string): Elem[] =>
  [
    h('label', { for: id }, label),
    h('input', { id, name: id, autocomplete: 'off', ...(hint ? { 'aria-describedby': `${id}-hint` } : {}), ...attrs }),
    hint ? h('small', { id: `${id}-hint`, class: 'hint' }, hint) : null,
  ].filter((e): e is Elem => e !== null)

function appForm(onDone: (message: string) => void, onCancel: () => void, editing: AppView | null): Elem {
  const form = h(
    'form',
    { class: 'app-form', id: 'app-form', 'aria-labelledby': 'app-form-title', novalidate: true },
    h('h2', { id: 'app-form-title' }, editing ? `Edit store app ${editing.name}` : 'Add a store app'),
    editing
      ? h('p', { class: 'hint' }, 'Saving replaces the app. Its credentials are never shown: give its API key or secret again, or it keeps none.')
      : null,
    h(
      'div',
      { class: 'grid-form' },
      field('app-name', 'Name', { required: true, pattern: '[A-Za-z_][A-Za-z0-9_\\-]{0,63}', ...(editing ? { readonly: true } : {}) }),
      field('app-key', 'Key id', {}, 'public id, e.g. the keyid of its signatures'),
      field('app-api-key', 'API key', { type: 'password' }, 'write-only: stored as its SHA-256'),
      field('app-api-key-from', 'API key valid from', { type: 'date' }),
      field('app-api-key-until', 'API key valid until', { type: 'date' }),
      field('app-secret', 'Secret (HMAC)', { type: 'password' }, 'write-only'),
      field('app-secret-from', 'Secret valid from', { type: 'date' }),
      field('app-secret-until', 'Secret valid until', { type: 'date' }),
      field('app-allow-ip', 'Allowed IPs', {}, 'addresses or CIDR ranges, separated by commas'),
      field('app-tier', 'Tier'),
      field('app-group', 'Group'),
      field('app-jwt-subject', 'JWT subject'),
      h('label', { for: 'app-meta' }, 'Meta'),
      h('textarea', { id: 'app-meta', name: 'app-meta', rows: 3, 'aria-describedby': 'app-meta-hint' }),
      h('small', { id: 'app-meta-hint', class: 'hint' }, 'one name = value a line'),
    ),
    h('div', { class: 'form-error', 'aria-live': 'assertive' }),
    h(
      'div',
      { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' }, editing ? 'Save app' : 'Add app'),
      h('button', { type: 'button', onclick: onCancel }, 'Cancel'),
    ),
  )
  const v = (id: string) => (form.querySelector(`#${id}`) as Field).value.trim()
  const set = (id: string, value: string) => void ((form.querySelector(`#${id}`) as Field).value = value)
  if (editing) {
    set('app-name', editing.name)
    set('app-key', editing.key ?? '')
    set('app-allow-ip', editing['allow-ip'].join(', '))
    set('app-tier', editing.tier ?? '')
    set('app-group', editing.group ?? '')
    set('app-jwt-subject', editing['jwt-subject'] ?? '')
    set(
      'app-meta',
      Object.entries(editing.meta)
        .map(([k, val]) => `${k} = ${val}`)
        .join('\n'),
    )
  }
  const errorBox = form.querySelector('.form-error')!
  form.addEventListener('submit', (e) => {
    e.preventDefault()
    const name = v('app-name')
    const problems: string[] = []
    if (!/^[A-Za-z_][A-Za-z0-9_-]{0,63}$/.test(name)) problems.push('Name: a letter or _, then up to 63 letters, digits, _ or -')
    const meta: Record<string, string> = {}
    for (const l of lines(v('app-meta'))) {
      const eq = l.indexOf('=')
      if (eq <= 0) problems.push(`Meta: '${l}' is not name = value`)
      else meta[l.slice(0, eq).trim()] = l.slice(eq + 1).trim()
    }
    if (problems.length) return errorBox.replaceChildren(alertBox(problems.join('; ')))
    const body: Record<string, unknown> = {}
    if (v('app-key')) body.key = v('app-key')
    if (v('app-api-key')) body['api-key'] = credential(v('app-api-key'), v('app-api-key-from'), v('app-api-key-until'))
    if (v('app-secret')) body.secret = credential(v('app-secret'), v('app-secret-from'), v('app-secret-until'))
    const ips = v('app-allow-ip')
      .split(/[\s,]+/)
      .filter(Boolean)
    if (ips.length) body['allow-ip'] = ips
    if (v('app-tier')) body.tier = v('app-tier')
    if (v('app-group')) body.group = v('app-group')
    if (v('app-jwt-subject')) body['jwt-subject'] = v('app-jwt-subject')
    if (Object.keys(meta).length) body.meta = meta
    errorBox.replaceChildren()
    withToken((token) => send<AppView>('PUT', `/apps/${name}`, body, token)).then(
      (saved) => saved && onDone(editing ? `Store app ${name} saved.` : `Store app ${name} added.`),
      (err: unknown) => errorBox.replaceChildren(alertBox(messageOf(err))),
    )
  })
  return form
}

// Asks to confirm with the page's confirm dialog; true when confirmed.
function confirmAction(text: string, action: string): Promise<boolean> {
  const dialog = byId<Dialog>('confirm-dialog')
  byId('confirm-text').textContent = text
  byId('confirm-ok').textContent = action
  dialog.returnValue = ''
  dialog.showModal()
  return new Promise((resolve) => dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true }))
}

export const appsPage: Page = {
  title: 'Apps',
  render(main) {
    const notice = h('div', { role: 'status', 'aria-live': 'polite', class: 'notice' })
    const listArea = h('div', {}, h('p', { class: 'muted' }, 'Loading apps…'))
    const formArea = h('div')
    const addButton = h('button', { type: 'button', class: 'primary', id: 'add-app' }, 'Add store app')
    let alive = true
    const openForm = (editing: AppView | null) => {
      const form = appForm(
        (message) => {
          formArea.replaceChildren()
          notice.textContent = message
          void load()
          addButton.focus()
        },
        () => {
          formArea.replaceChildren()
          addButton.focus()
        },
        editing,
      )
      formArea.replaceChildren(form)
      ;(form.querySelector(editing ? '#app-key' : '#app-name') as Field).focus()
    }
    addButton.addEventListener('click', () => openForm(null))
    const revoke = async (name: string) => {
      if (!(await confirmAction(`Revoke the store app ${name}? Its credentials stop working at once.`, 'Revoke'))) return
      try {
        const done = await withToken((token) => send<void>('DELETE', `/apps/${name}`, undefined, token))
        if (done === null) return
        notice.textContent = `Store app ${name} revoked.`
        await load()
      } catch (err) {
        notice.replaceChildren(alertBox(messageOf(err)))
      }
    }
    const load = async () => {
      let answer: AppsAnswer
      try {
        answer = await get<AppsAnswer>('/apps')
      } catch (err) {
        return void listArea.replaceChildren(alertBox(`The apps could not be read: ${messageOf(err)}`))
      }
      if (!alive) return
      const rows = answer.apps.map((a) =>
        h(
          'tr',
          { 'data-app': a.name },
          h('th', { scope: 'row' }, a.name),
          h('td', {}, h('span', { class: `badge src-${a.source}` }, a.source)),
          h('td', {}, a.key ? h('code', {}, a.key) : h('span', { class: 'muted' }, '—')),
          h('td', {}, a.tier ?? '—'),
          h('td', {}, a.group ?? '—'),
          h('td', {}, a['allow-ip'].length ? a['allow-ip'].join(', ') : h('span', { class: 'muted' }, 'any')),
          h('td', {}, credentials(a)),
          h(
            'td',
            { class: 'row-actions' },
            a.source === 'store'
              ? [
                  h('button', { type: 'button', onclick: () => openForm(a), 'aria-label': `Edit ${a.name}` }, 'Edit'),
                  h('button', { type: 'button', class: 'danger', onclick: () => void revoke(a.name), 'aria-label': `Revoke ${a.name}` }, 'Revoke'),
                ]
              : h('span', { class: 'muted' }, 'in the policy files'),
          ),
        ),
      )
      listArea.replaceChildren(
        h(
          'p',
          { class: 'muted' },
          `${answer.apps.length} apps; store: ${answer.store.kind}${answer.store.live ? ' (changes reach every instance sharing it)' : ''}.`,
        ),
        table('Apps', ['Name', 'Source', 'Key id', 'Tier', 'Group', 'Allowed IPs', 'Credentials and rotation', 'Actions'], rows, {
          id: 'apps-table',
        }),
      )
    }
    main.replaceChildren(
      h('h1', { tabindex: -1 }, 'Apps'),
      h(
        'p',
        { class: 'hint' },
        currentToken()
          ? 'Changes use the admin token kept for this tab.'
          : 'Read-only without the admin token: adding, editing or revoking a store app asks for it once (kept only for this tab).',
      ),
      h('div', { class: 'toolbar' }, addButton),
      notice,
      formArea,
      listArea,
    )
    void load()
    return () => void (alive = false)
  },
}
