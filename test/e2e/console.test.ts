// The web console (/console on the admin listener) in a real browser: headless Chromium
// (Debian's chromium package; .ci/run installs it) driven by playwright-core against a real
// gateway and upstream. Each view is screenshotted into test-output/console/ (git-ignored);
// with PORTCULLIS_DOCS_SCREENSHOTS=1 they are also copied to docs/console/ for the README.
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import {
  ADMIN_TOKEN,
  closedPort,
  policyDir,
  removeDir,
  ROOT,
  startGateway,
  startUpstream,
  type RunningGateway,
  type Upstream,
} from '../helpers/gateway.ts'
import { until } from '../helpers/poll.ts'

const OUT = join(ROOT, 'test-output/console')
const DOCS = join(ROOT, 'docs/console')
const FILE_KEY = 'file-key-console-5c1e9a27'
const STORE_KEY = 'store-key-console-8b2d4f61'

// Debian's chromium, or CHROMIUM_PATH. Missing is a failure, never a skip.
function chromiumPath(): string {
  const given = process.env.CHROMIUM_PATH
  const found = given ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p))
  if (!found || !existsSync(found))
    throw new Error(
      `headless Chromium not found${given ? ` at CHROMIUM_PATH=${given}` : ' (/usr/bin/chromium)'}: install Debian's chromium package (apt-get install -y chromium; .ci/run does it when missing)`,
    )
  return found
}

const POLICY = (upstream: string, dead: number) => `
upstream backend {
  target ${upstream}
}

upstream reports {
  target ${upstream}
  target http://127.0.0.1:${dead}
  health GET /healthz every 60s fails 1
}

tier gold 20/min

app partner {
  key "ak_partner"
  api-key env FILE_KEY
  group partners
  tier gold
  allow ip 127.0.0.0/8
}

match GET /api/items/{id} {
  require key
  allow group partners
  proxy backend
}

match GET /api/public {
  proxy backend
}

match GET /api/limited {
  throttle 5/s per ip
  proxy backend
}

match GET /internal/stats {
  allow ip 10.0.0.0/8
  proxy backend
}

match GET /reports/{rest*} {
  proxy reports
}

match GET /old/{rest*} {
  status deprecated sunset 2027-06-30
  proxy backend
}
`

let upstream: Upstream
let dir: string
let gw: RunningGateway
let browser: Browser
let context: BrowserContext
let page: Page
let launchError: Error | null = null
const requested: string[] = []
const pageErrors: string[] = []

beforeAll(async () => {
  mkdirSync(OUT, { recursive: true })
  upstream = startUpstream()
  dir = policyDir({ 'main.policy': POLICY(upstream.url, closedPort()) })
  gw = await startGateway(dir, ['--no-watch'], { FILE_KEY })
  try {
    browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox', '--disable-dev-shm-usage'] })
  } catch (err) {
    launchError = err as Error
    return
  }
  context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' })
  page = await context.newPage()
  page.setDefaultTimeout(5_000)
  page.on('request', (r) => void requested.push(r.url()))
  page.on('pageerror', (e) => void pageErrors.push(e.message))
  // Errors and CSP violations; a failed load is the API's answer, which the page shows itself.
  page.on('console', (m) => void (m.type() === 'error' && !m.text().startsWith('Failed to load resource') && pageErrors.push(m.text())))
}, 30_000)

afterAll(async () => {
  await browser?.close()
  await gw?.stop()
  upstream?.stop()
  if (dir) removeDir(dir)
})

function ready(): Page {
  if (launchError) throw launchError
  return page
}

async function open(view: string): Promise<Page> {
  const p = ready()
  await p.goto(`${gw.adminUrl}/console#/${view}`)
  await p.locator('main h1').waitFor()
  return p
}

// One screenshot per view; also for the README when asked.
async function shot(p: Page, name: string): Promise<void> {
  const file = join(OUT, `${name}.png`)
  await p.screenshot({ path: file, fullPage: true })
  if (process.env.PORTCULLIS_DOCS_SCREENSHOTS === '1') {
    mkdirSync(DOCS, { recursive: true })
    copyFileSync(file, join(DOCS, `${name}.png`))
  }
}

const withKey = (key: string) => gw.fetch('/api/items/1', { headers: { 'x-api-key': key } }).then(async (r) => (await r.body?.cancel(), r.status))

test('the console is served with a strict content security policy, bundled once at start', async () => {
  const page = await gw.admin('/console')
  expect(page.status).toBe(200)
  expect(page.headers.get('content-type')).toContain('text/html')
  expect(page.headers.get('content-security-policy')).toContain("default-src 'self'")
  expect(await page.text()).toContain('<nav id="nav"')
  const script = await gw.admin('/console/console.js')
  expect(script.status).toBe(200)
  const timing = /bundle;dur=([\d.]+)/.exec(script.headers.get('server-timing') ?? '')
  expect(timing).not.toBeNull()
  writeFileSync(join(OUT, 'bundle-ms.txt'), `${timing![1]}\n`)
  expect((await script.text()).length).toBeGreaterThan(1000)
  const missing = await gw.admin('/console/nothing.js')
  expect(missing.status).toBe(404)
  expect(missing.headers.get('gateway-error')).toBe('no_route')
  const post = await gw.admin('/console', { method: 'POST' })
  expect(post.status).toBe(405)
}, 30_000)

test('the routes page lists the routes with their directives, lifecycle and source', async () => {
  const p = await open('routes')
  const rows = p.locator('#routes-table tbody tr')
  await until(
    () => rows.count(),
    (n) => n === 6,
    5_000,
    'route rows',
  )
  const items = p.locator('tr[data-route="GET /api/items/{id}"]')
  await expect(items.locator('td').nth(4).textContent()).resolves.toContain('require key')
  await expect(items.locator('td').nth(4).textContent()).resolves.toContain('proxy backend')
  // The route's own directives with their arguments, as written.
  const stats = p.locator('tr[data-route="GET /internal/stats"] td').nth(4)
  await until(
    () => stats.textContent(),
    (t) => (t ?? '').includes('allow ip 10.0.0.0/8'),
    5_000,
    'arguments',
  )
  expect(await items.locator('td').nth(4).textContent()).toContain('allow group partners')
  const old = p.locator('tr[data-route="GET /old/{rest*}"] td.lifecycle')
  await until(
    () => old.textContent(),
    (t) => t === 'deprecated sunset 2027-06-30',
    5_000,
    'lifecycle',
  )
  await expect(p.locator('tr[data-route="GET /api/public"] td.lifecycle').textContent()).resolves.toBe('active')
  // The block as written: the directives with their arguments.
  await p.locator('tr[data-route="GET /internal/stats"] summary').click()
  await expect(p.locator('tr[data-route="GET /internal/stats"] pre.block').textContent()).resolves.toContain('allow ip 10.0.0.0/8')
  await shot(p, 'routes')

  const search = p.getByLabel('Search routes')
  await search.fill('throttle')
  await until(
    () => p.locator('#routes-table tbody tr:visible').count(),
    (n) => n === 1,
    2_000,
    'search',
  )
  await expect(p.locator('#routes-table tbody tr:visible').getAttribute('data-route')).resolves.toBe('GET /api/limited')
  await expect(p.getByRole('status').first().textContent()).resolves.toContain('1 of 6 routes')
  await search.fill('')

  // Each route links to its policy source, the line highlighted.
  await p.locator('tr[data-route="GET /old/{rest*}"] td a').first().click()
  const hl = p.locator('ol.source li.hl')
  await hl.waitFor()
  expect(await hl.textContent()).toContain('match GET /old/{rest*}')
  expect(await hl.getAttribute('aria-current')).toBe('location')
  await shot(p, 'source')
}, 30_000)

test('the apps page adds a store app and revokes it; the gateway refuses its key within 1 s', async () => {
  const p = await open('apps')
  await p.locator('tr[data-app="partner"]').waitFor()
  const file = await p.locator('tr[data-app="partner"]').textContent()
  for (const word of ['file', 'ak_partner', 'gold', 'partners', '127.0.0.0/8', 'API key']) expect(file).toContain(word)
  expect(await withKey(STORE_KEY)).toBe(401)

  await p.getByRole('button', { name: 'Add store app' }).click()
  await p.getByLabel('Name', { exact: true }).fill('console_app')
  await p.getByLabel('Key id').fill('ak_console')
  await p.getByLabel('API key', { exact: true }).fill(STORE_KEY)
  await p.getByLabel('API key valid until').fill('2099-12-31')
  await p.getByLabel('Allowed IPs').fill('127.0.0.1, ::1')
  await p.getByLabel('Tier').fill('gold')
  await p.getByLabel('Group').fill('partners')
  await p.getByLabel('Meta').fill('partner_code = PC-7')
  await p.getByRole('button', { name: 'Add app' }).click()
  // No token yet: the console asks for it once, and keeps it only in session storage.
  await p.locator('#token-dialog').waitFor()
  await p.getByLabel('Token', { exact: true }).fill(ADMIN_TOKEN)
  await p.getByRole('button', { name: 'Use token' }).click()
  const row = p.locator('tr[data-app="console_app"]')
  await row.waitFor()
  const text = await row.textContent()
  for (const word of ['store', 'ak_console', 'gold', 'partners', '127.0.0.1, ::1', 'until 2099-12-31', 'partner_code = PC-7'])
    expect(text).toContain(word)
  expect(await p.content()).not.toContain(STORE_KEY)
  expect(
    await p.evaluate(() =>
      (globalThis as unknown as { sessionStorage: { getItem(k: string): string | null } }).sessionStorage.getItem('portcullis.admin-token'),
    ),
  ).toBe(ADMIN_TOKEN)
  expect(await p.evaluate(() => (globalThis as unknown as { localStorage: { length: number } }).localStorage.length)).toBe(0)
  expect(await withKey(STORE_KEY)).toBe(200)
  await shot(p, 'apps')

  await row.getByRole('button', { name: 'Revoke console_app' }).click()
  await p.locator('#confirm-dialog').waitFor()
  await p.locator('#confirm-ok').click()
  const revokedAt = performance.now()
  // The token was asked once: the revoke does not ask again.
  expect(await p.locator('#token-dialog').isVisible()).toBe(false)
  await until(
    () => withKey(STORE_KEY),
    (s) => s === 401,
    1_000,
    'the revoked key refused',
  )
  const refusedAfter = performance.now() - revokedAt
  expect(refusedAfter).toBeLessThan(1_000)
  await row.waitFor({ state: 'detached' })
  await expect(p.getByRole('status').first().textContent()).resolves.toContain('revoked')
  expect(await withKey(FILE_KEY)).toBe(200)
}, 30_000)

test('a change with a wrong admin token is refused and the token forgotten', async () => {
  const other = await ready()
    .context()
    .browser()!
    .newContext({ viewport: { width: 1280, height: 800 } })
  try {
    const p = await other.newPage()
    p.on('request', (r) => void requested.push(r.url()))
    await p.goto(`${gw.adminUrl}/console#/apps`)
    await p.locator('tr[data-app="partner"]').waitFor()
    await expect(p.locator('#token-state').textContent()).resolves.toContain('Read-only')
    await p.getByRole('button', { name: 'Add store app' }).click()
    await p.getByLabel('Name', { exact: true }).fill('intruder')
    await p.getByLabel('API key', { exact: true }).fill('intruder-key-0123456789')
    await p.getByRole('button', { name: 'Add app' }).click()
    await p.getByLabel('Token', { exact: true }).fill('not-the-admin-token-xyz')
    await p.getByRole('button', { name: 'Use token' }).click()
    const alert = p.locator('#app-form [role="alert"]')
    await alert.waitFor()
    expect(await alert.textContent()).toContain('wrong admin token')
    expect(await p.evaluate(() => (globalThis as unknown as { sessionStorage: { length: number } }).sessionStorage.length)).toBe(0)
    const apps = (await (await gw.admin('/apps')).json()) as { apps: { name: string }[] }
    expect(apps.apps.map((a) => a.name)).not.toContain('intruder')
  } finally {
    await other.close()
  }
}, 30_000)

test("the traffic page's charts move while a bounded load runs", async () => {
  const p = await open('traffic')
  await until(
    () => p.locator('#stream-state').textContent(),
    (t) => t === 'live',
    5_000,
    'stream',
  )
  const requests = p.locator('#chart-requests')
  await requests.locator('svg').waitFor()
  const before = { svg: await requests.innerHTML(), total: Number(await requests.getAttribute('data-total')) }

  // 120 answered, 30 unauthenticated, and a throttled burst, over about two seconds.
  const get = (path: string, headers: Record<string, string> = {}) =>
    gw.fetch(path, { headers }).then(async (r) => (await r.body?.cancel(), r.status))
  const statuses: number[] = []
  for (let round = 0; round < 6; round++) {
    const batch = [
      ...Array.from({ length: 20 }, () => get('/api/public')),
      ...Array.from({ length: 5 }, () => get('/api/items/1')),
      ...Array.from({ length: 8 }, () => get('/api/limited')),
      get('/api/items/2', { 'x-api-key': FILE_KEY }),
    ]
    statuses.push(...(await Promise.all(batch)))
    await Bun.sleep(300)
  }
  expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0)
  expect(statuses.filter((s) => s === 401).length).toBe(30)

  await until(
    async () => Number(await requests.getAttribute('data-total')),
    (n) => n >= before.total + statuses.length,
    5_000,
    'requests chart total',
  )
  expect(await requests.innerHTML()).not.toBe(before.svg)
  const codes = await p.locator('#chart-errors path.line').evaluateAll((ps) => ps.map((x) => x.getAttribute('data-series')))
  expect(codes).toContain('unauthenticated')
  expect(codes).toContain('rate_limited')
  await until(
    () => p.locator('#throttled-table').textContent(),
    (t) => (t ?? '').includes('/api/limited'),
    3_000,
    'throttled table',
  )
  const auth = await p.locator('#auth-table').textContent()
  expect(auth).toContain('/api/items')
  expect(auth).toContain('unauthenticated')
  await until(
    () => p.locator('#chart-latency').getAttribute('data-total'),
    (t) => Number(t) > 0,
    3_000,
    'latency chart',
  )
  // The window narrows at once, without waiting for the next point.
  await p.getByLabel('Window').selectOption('1')
  await until(
    () => p.locator('#chart-requests text.x').first().textContent(),
    (t) => t === '−1 min',
    2_000,
    'one-minute window',
  )
  await shot(p, 'traffic')
}, 30_000)

test('the upstreams page shows each target with health and counts', async () => {
  const p = await open('upstreams')
  const backend = p.locator('section[data-upstream="backend"] tbody tr')
  await backend.waitFor()
  expect(await backend.count()).toBe(1)
  const text = (await backend.textContent()) ?? ''
  expect(text).toContain(upstream.url)
  expect(text).toContain('healthy')
  expect(Number(await backend.locator('td').nth(2).textContent())).toBeGreaterThan(0)
  // A target that fails its health check is shown out of the rotation (the page refreshes itself).
  await gw.waitFor('stderr', /upstream reports: .* failed 1 health checks/)
  const dead = p.locator('section[data-upstream="reports"] tbody tr').nth(1)
  await until(
    () => dead.locator('td').first().textContent(),
    (t) => t === 'unhealthy',
    5_000,
    'the dead target unhealthy',
  )
  expect(await p.locator('section[data-upstream="reports"] tbody tr').first().locator('td').first().textContent()).toBe('healthy')
  await shot(p, 'upstreams')
}, 30_000)

test('the explain form shows a 403 with the refusing directive', async () => {
  const p = await open('explain')
  await p.getByLabel('Method').selectOption('GET')
  await p.getByLabel('Path').fill('/internal/stats')
  await p.getByLabel('Client IP').fill('127.0.0.1')
  await p.getByRole('button', { name: 'Explain' }).click()
  const heading = p.locator('#explain-result-title')
  await heading.waitFor()
  expect(await heading.textContent()).toBe('Answer 403 forbidden')
  const decisive = (await p.locator('#explain-decisive').textContent()) ?? ''
  expect(decisive).toContain('allow ip')
  expect(decisive).toContain('main.policy:')
  expect(await p.locator('#explain-steps tr.outcome-refused').textContent()).toContain('allow ip')
  // The result takes focus, so keyboard users land on it.
  expect(await p.evaluate(() => (globalThis as unknown as { document: { activeElement: { id: string } } }).document.activeElement.id)).toBe(
    'explain-result-title',
  )

  // As an app, with its credentials: through to the upstream.
  await p.getByLabel('Path').fill('/api/items/7')
  await p.getByLabel('As app').selectOption('partner')
  await p.getByRole('button', { name: 'Explain' }).click()
  await until(
    () => heading.textContent(),
    (t) => t === 'Answer 200',
    5_000,
    'explain as app',
  )
  await p.getByLabel('Path').fill('/internal/stats')
  await p.getByLabel('As app').selectOption('')
  await p.getByRole('button', { name: 'Explain' }).click()
  await until(
    () => heading.textContent(),
    (t) => t === 'Answer 403 forbidden',
    5_000,
    'explain again',
  )
  await shot(p, 'explain')
}, 30_000)

test("the reloads page shows the version and a rejected reload's diagnostics like gateway check", async () => {
  const p = await open('reloads')
  const version = Number(await p.locator('#program-version').textContent())
  expect(version).toBeGreaterThanOrEqual(1)
  writeFileSync(join(dir, 'broken.policy'), 'match GET /broken {\n  proxy nowhere\n}\n')
  await p.getByRole('button', { name: 'Reload now' }).click()
  const diagnostics = p.locator('#rejected-text')
  await diagnostics.waitFor()
  const text = (await diagnostics.textContent()) ?? ''
  expect(text).toMatch(/broken\.policy:2:\d+/)
  expect(text).toContain('nowhere')
  await expect(p.getByRole('status').first().textContent()).resolves.toContain('Reload refused')
  await shot(p, 'reloads')

  removeDir(join(dir, 'broken.policy'))
  await p.getByRole('button', { name: 'Reload now' }).click()
  await until(
    () => p.locator('#program-version').textContent(),
    (t) => Number(t) > version,
    5_000,
    'version after reload',
  )
  await p.locator('#rejected-text').waitFor({ state: 'detached' })
}, 30_000)

test('keyboard, narrow window and dark scheme', async () => {
  const p = await open('routes')
  await p.reload()
  await p.locator('#routes-table').waitFor()
  // From the top: the skip link first, then the token button, then the pages.
  await p.locator('body').focus()
  await p.keyboard.press('Tab')
  expect(
    await p.evaluate(() => (globalThis as unknown as { document: { activeElement: { textContent: string } } }).document.activeElement.textContent),
  ).toBe('Skip to content')
  const nav = p.getByRole('navigation', { name: 'Console pages' })
  await nav.getByRole('link', { name: 'Upstreams' }).focus()
  await p.keyboard.press('Enter')
  await until(
    () => p.evaluate(() => (globalThis as unknown as { location: { hash: string } }).location.hash),
    (h) => h === '#/upstreams',
    2_000,
    'hash',
  )
  await until(
    () =>
      p.evaluate(() => {
        const active = (globalThis as unknown as { document: { activeElement: { tagName: string; textContent: string } } }).document.activeElement
        return `${active.tagName} ${active.textContent}`
      }),
    // The heading, not the nav link of the same name that had the focus before.
    (t) => t === 'H1 Upstreams',
    2_000,
    'focus on the heading',
  )
  await until(
    () => nav.getByRole('link', { name: 'Upstreams' }).getAttribute('aria-current'),
    (current) => current === 'page',
    2_000,
    'the nav link marked current',
  )
  // The focus ring is visible.
  await nav.getByRole('link', { name: 'Apps' }).focus()
  await p.keyboard.press('Shift+Tab')
  await p.keyboard.press('Tab')
  const outline = await nav.getByRole('link', { name: 'Apps' }).evaluate((a) => {
    const g = globalThis as unknown as { getComputedStyle(e: unknown): { outlineStyle: string; outlineWidth: string } }
    return g.getComputedStyle(a)
  })
  expect(outline.outlineStyle).toBe('solid')

  // ~400 px: nothing but the tables' own regions scrolls sideways.
  await p.setViewportSize({ width: 400, height: 800 })
  await p.emulateMedia({ colorScheme: 'dark' })
  const shown = {
    routes: '#routes-table',
    apps: '#apps-table',
    traffic: '#chart-requests svg',
    upstreams: 'section[data-upstream="backend"]',
    explain: '#explain-form',
  }
  for (const [view, selector] of Object.entries(shown)) {
    await open(view)
    await p.locator(selector).waitFor()
    const width = await p.evaluate(
      () => (globalThis as unknown as { document: { documentElement: { scrollWidth: number } } }).document.documentElement.scrollWidth,
    )
    expect(width).toBeLessThanOrEqual(400)
  }
  await open('routes')
  await p.locator('#routes-table').waitFor()
  await shot(p, 'routes-narrow-dark')
  const bg = await p.evaluate(() => {
    const g = globalThis as unknown as { getComputedStyle(e: unknown): { backgroundColor: string }; document: { body: unknown } }
    return g.getComputedStyle(g.document.body).backgroundColor
  })
  expect(bg).toBe('rgb(15, 19, 24)')
  await p.setViewportSize({ width: 1280, height: 800 })
  await p.emulateMedia({ colorScheme: 'light' })
}, 30_000)

test('the console sent no request to anything but its own listener, and logged no error', () => {
  ready()
  expect(requested.length).toBeGreaterThan(10)
  expect(requested.filter((u) => !u.startsWith(`${gw.adminUrl}/`))).toEqual([])
  expect(pageErrors).toEqual([])
}, 30_000)
