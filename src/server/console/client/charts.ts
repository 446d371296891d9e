// Line charts as inline SVG, drawn at the width they are shown at (redrawn on each new point).
// Colours come from the stylesheet (.s0 … .s7), so dark and light themes both apply.
import { h, s, type Elem } from './dom.ts'

export interface Series {
  name: string
  values: (number | null)[]
}

export interface ChartData {
  times: number[] // ms since epoch, one per value
  start: number
  end: number
  unit: string
  series: Series[]
}

const HEIGHT = 170
const M = { left: 46, right: 10, top: 10, bottom: 22 }

export function formatNumber(n: number): string {
  if (n === 0) return '0'
  if (Math.abs(n) >= 100) return String(Math.round(n))
  return String(Number(n.toPrecision(2)))
}

// 1, 2 or 5 × 10^k at or above `v`: the top of the y axis.
function niceTop(v: number): number {
  if (v <= 0) return 1
  const p = 10 ** Math.floor(Math.log10(v))
  return [1, 2, 5, 10].map((m) => m * p).find((t) => t >= v)!
}

const ago = (ms: number): string => {
  const s = Math.round(ms / 1000)
  return s === 0 ? 'now' : s % 60 === 0 ? `−${s / 60} min` : `−${s} s`
}

const latest = (values: (number | null)[]): number | null => {
  for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null && values[i] !== undefined) return values[i]!
  return null
}

// Draws `data` into `host` (a figure's chart area), replacing what was there.
export function drawChart(host: Elem, title: string, data: ChartData): void {
  const width = Math.max(host.clientWidth || 600, 260)
  const plotW = width - M.left - M.right
  const plotH = HEIGHT - M.top - M.bottom
  const all = data.series.flatMap((x) => x.values.filter((v): v is number => v !== null))
  const top = niceTop(Math.max(0, ...all))
  const span = Math.max(1, data.end - data.start)
  const x = (t: number) => M.left + ((t - data.start) / span) * plotW
  const y = (v: number) => M.top + plotH - (v / top) * plotH
  const grid = [0, top / 2, top].map((v) => [
    s('line', { class: 'grid', x1: M.left, x2: width - M.right, y1: y(v), y2: y(v) }),
    s('text', { class: 'tick', x: M.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, formatNumber(v)),
  ])
  const ticks = [data.start, (data.start + data.end) / 2, data.end].map((t, i) =>
    s('text', { class: 'tick x', x: x(t), y: HEIGHT - 6, 'text-anchor': ['start', 'middle', 'end'][i]! }, ago(data.end - t)),
  )
  const lines = data.series.map((ser, i) => {
    let d = ''
    let pen = false
    ser.values.forEach((v, j) => {
      if (v === null) return void (pen = false)
      // A zero-length segment at each start: with round caps a lone point shows as a dot.
      d += `${pen ? 'L' : 'M'}${x(data.times[j]!).toFixed(1)} ${y(v).toFixed(1)}${pen ? '' : 'l0 0'}`
      pen = true
    })
    return s('path', { class: `line s${i % 8}`, d: d || `M${M.left} ${y(0)}`, 'data-series': ser.name })
  })
  const summary = data.series.map((ser) => `${ser.name} ${formatNumber(latest(ser.values) ?? 0)} ${data.unit}`).join(', ')
  const svg = s(
    'svg',
    { viewBox: `0 0 ${width} ${HEIGHT}`, width, height: HEIGHT, role: 'img', 'aria-label': `${title}, latest: ${summary || 'no data'}` },
    grid,
    ticks,
    lines,
  )
  const legend = h(
    'ul',
    { class: 'legend' },
    data.series.map((ser, i) =>
      h(
        'li',
        {},
        h('span', { class: `swatch s${i % 8}`, 'aria-hidden': 'true' }),
        `${ser.name}: `,
        h('strong', {}, formatNumber(latest(ser.values) ?? 0)),
        ` ${data.unit}`,
      ),
    ),
  )
  const total = all.reduce((a, b) => a + b, 0)
  host.setAttribute('data-total', formatNumber(total))
  host.setAttribute('data-points', String(data.times.length))
  host.replaceChildren(svg, data.series.length ? legend : h('p', { class: 'muted' }, 'nothing yet'))
}
