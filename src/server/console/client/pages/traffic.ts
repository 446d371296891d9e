// Traffic: requests/s, errors by gateway error code, p50/p99 latency, throttled requests and
// auth failures per app and route, live from GET /traffic/stream (server-sent events).
import { get, messageOf, type TrafficAnswer, type TrafficPoint } from '../api.ts'
import { drawChart, formatNumber, type ChartData } from '../charts.ts'
import { alertBox, h, openEventStream, table, win, type Elem, type EventStream, type Field } from '../dom.ts'
import type { Page } from '../page.ts'

const WINDOWS = [1, 5, 10, 15]

function chart(id: string, title: string): { figure: Elem; area: Elem; title: string } {
  const area = h('div', { class: 'chart-area', id })
  return { figure: h('figure', { class: 'chart' }, h('figcaption', {}, title), area), area, title }
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0)
const who = (app: string | null) => app || '(unidentified)'

export const trafficPage: Page = {
  title: 'Traffic',
  render(main) {
    let minutes = 5
    const points = new Map<number, TrafficPoint>()
    const state = h('span', { class: 'badge', id: 'stream-state' }, 'connecting')
    const picker = h(
      'select',
      { id: 'traffic-window' },
      WINDOWS.map((m) => h('option', { value: m, selected: m === minutes }, `last ${m} min`)),
    ) as Field
    const tiles = h('dl', { class: 'tiles' })
    const charts = {
      requests: chart('chart-requests', 'Requests per second'),
      errors: chart('chart-errors', 'Gateway errors per second, by code'),
      latency: chart('chart-latency', 'Latency (ms)'),
      refusals: chart('chart-refusals', 'Throttled and auth failures per second'),
    }
    const breakdown = h('div', { class: 'breakdown' })
    const problem = h('div')
    main.replaceChildren(
      h('h1', { tabindex: -1 }, 'Traffic'),
      h('div', { class: 'toolbar' }, h('label', { for: 'traffic-window' }, 'Window'), picker, h('span', {}, 'Stream: ', state)),
      problem,
      tiles,
      h(
        'div',
        { class: 'charts' },
        Object.values(charts).map((c) => c.figure),
      ),
      breakdown,
    )

    const draw = () => {
      const end = Math.max(Date.now(), ...points.keys())
      const start = end - minutes * 60_000
      for (const t of points.keys()) if (t < end - 15 * 60_000) points.delete(t)
      const shown = [...points.values()].filter((p) => p.t >= start).sort((a, b) => a.t - b.t)
      const times = shown.map((p) => p.t)
      const base = { times, start, end }
      const codes = [...new Set(shown.flatMap((p) => Object.keys(p.errors)))].sort()
      const data: Record<keyof typeof charts, ChartData> = {
        requests: { ...base, unit: '/s', series: [{ name: 'requests', values: shown.map((p) => p.requests) }] },
        errors: { ...base, unit: '/s', series: codes.map((c) => ({ name: c, values: shown.map((p) => p.errors[c] ?? 0) })) },
        latency: {
          ...base,
          unit: 'ms',
          series: [
            { name: 'p50', values: shown.map((p) => p.p50_ms) },
            { name: 'p99', values: shown.map((p) => p.p99_ms) },
          ],
        },
        refusals: {
          ...base,
          unit: '/s',
          series: [
            { name: 'throttled', values: shown.map((p) => sum(p.throttled.map((x) => x.n))) },
            { name: 'auth failures', values: shown.map((p) => sum(p.auth_failures.map((x) => x.n))) },
          ],
        },
      }
      for (const [k, c] of Object.entries(charts)) drawChart(c.area, c.title, data[k as keyof typeof charts])

      const requests = sum(shown.map((p) => p.requests))
      const errors = sum(shown.flatMap((p) => Object.values(p.errors)))
      const last = shown[shown.length - 1]
      const tile = (label: string, value: string) => h('div', {}, h('dt', {}, label), h('dd', {}, value))
      tiles.replaceChildren(
        tile('Requests/s now', last ? formatNumber(last.requests) : '—'),
        tile(`Requests, last ${minutes} min`, String(requests)),
        tile('Error rate', requests ? `${formatNumber((errors / requests) * 100)} %` : '—'),
        tile('p50 / p99 now', last && last.p50_ms !== null ? `${formatNumber(last.p50_ms)} / ${formatNumber(last.p99_ms ?? 0)} ms` : '—'),
      )

      const throttled = new Map<string, { app: string; route: string; n: number }>()
      for (const p of shown)
        for (const x of p.throttled) {
          const k = `${who(x.app)}\0${x.route}`
          const e = throttled.get(k) ?? { app: who(x.app), route: x.route, n: 0 }
          e.n += x.n
          throttled.set(k, e)
        }
      const auth = new Map<string, { app: string; route: string; code: string; n: number }>()
      for (const p of shown)
        for (const x of p.auth_failures) {
          const k = `${who(x.app)}\0${x.route}\0${x.code}`
          const e = auth.get(k) ?? { app: who(x.app), route: x.route, code: x.code, n: 0 }
          e.n += x.n
          auth.set(k, e)
        }
      const byCount = <T extends { n: number }>(m: Map<string, T>) => [...m.values()].sort((a, b) => b.n - a.n)
      breakdown.replaceChildren(
        h(
          'section',
          { 'aria-labelledby': 'throttled-title' },
          h('h2', { id: 'throttled-title' }, `Throttled, last ${minutes} min`),
          throttled.size
            ? table(
                'Throttled requests by app and route',
                ['App', 'Route', 'Requests'],
                byCount(throttled).map((x) => h('tr', {}, h('td', {}, x.app), h('td', {}, h('code', {}, x.route)), h('td', { class: 'num' }, x.n))),
                { id: 'throttled-table' },
              )
            : h('p', { class: 'muted' }, 'none'),
        ),
        h(
          'section',
          { 'aria-labelledby': 'auth-title' },
          h('h2', { id: 'auth-title' }, `Auth failures, last ${minutes} min`),
          auth.size
            ? table(
                'Auth failures by app and route',
                ['App', 'Route', 'Code', 'Requests'],
                byCount(auth).map((x) =>
                  h('tr', {}, h('td', {}, x.app), h('td', {}, h('code', {}, x.route)), h('td', {}, x.code), h('td', { class: 'num' }, x.n)),
                ),
                { id: 'auth-table' },
              )
            : h('p', { class: 'muted' }, 'none'),
        ),
      )
    }

    const add = (ps: TrafficPoint[]) => ps.forEach((p) => points.set(p.t, p))
    let stream: EventStream | null = null
    let alive = true
    const connect = () => {
      stream = openEventStream('/traffic/stream')
      stream.addEventListener('open', () => void (state.textContent = 'live'))
      stream.addEventListener('error', () => void (state.textContent = stream?.readyState === 2 ? 'closed' : 'reconnecting'))
      stream.addEventListener('history', (e) => {
        add(JSON.parse((e as MessageEvent<string>).data) as TrafficPoint[])
        draw()
      })
      stream.addEventListener('point', (e) => {
        add([JSON.parse((e as MessageEvent<string>).data) as TrafficPoint])
        state.textContent = 'live'
        draw()
      })
    }
    const backfill = () =>
      get<TrafficAnswer>(`/traffic?minutes=${minutes}`).then(
        (a) => {
          if (!alive) return
          problem.replaceChildren()
          add(a.points)
          draw()
        },
        (err: unknown) => alive && problem.replaceChildren(alertBox(`The traffic could not be read: ${messageOf(err)}`)),
      )
    picker.addEventListener('change', () => {
      minutes = Number(picker.value)
      draw()
      void backfill()
    })
    draw()
    void backfill().then(() => alive && connect())
    // Redraw at the new width when the window is resized.
    const resized = () => draw()
    win.addEventListener('resize', resized)
    return () => {
      alive = false
      stream?.close()
      win.removeEventListener('resize', resized)
    }
  },
}
