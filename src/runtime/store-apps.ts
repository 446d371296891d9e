// The store's apps as this process knows them: loaded at start, kept current by the store's
// change notifications (Redis pub/sub reaches every instance within milliseconds), one copy
// per store shared by every program. While notifications are not flowing, or a change could
// not be read, the copy may be stale: lookups of store apps then answer 'unavailable'.
import type { Store } from '../store/store.ts'
import { AppIndex, appFromStored, type App, type AppDirectory, type Lookup } from './identity.ts'
import { failure, warn } from '../log/events.ts'

export class StoreApps {
  private index = new AppIndex([])
  private fresh = false
  private loading: Promise<void> | null = null
  private readonly unwatch: () => void

  constructor(private readonly store: Store) {
    this.unwatch = store.apps.watch((change) => {
      if ('all' in change) void this.reload()
      else void this.refresh(change.name)
    })
  }

  get live(): boolean {
    return this.fresh && this.store.live
  }

  get current(): AppIndex {
    return this.index
  }

  // Reads every store app; resolves whether or not the store answered.
  reload(): Promise<void> {
    this.loading ??= (async () => {
      try {
        const records = await this.store.apps.list()
        const apps: App[] = []
        for (const r of records) {
          try {
            apps.push(appFromStored(r))
          } catch (err) {
            warn('apps', `store app '${r.name}' cannot be used: ${(err as Error).message}`, { app: r.name })
          }
        }
        this.index = new AppIndex(apps)
        this.fresh = true
      } catch (err) {
        this.fresh = false
        failure('store', `cannot read the store's apps: ${(err as Error).message}`)
      } finally {
        this.loading = null
      }
    })()
    return this.loading
  }

  private async refresh(name: string): Promise<void> {
    try {
      const r = await this.store.apps.get(name)
      const apps = [...this.index.byName.values()].filter((a) => a.name !== name)
      if (r) {
        try {
          apps.push(appFromStored(r))
        } catch (err) {
          warn('apps', `store app '${name}' cannot be used: ${(err as Error).message}`, { app: name })
        }
      }
      this.index = new AppIndex(apps)
    } catch {
      // The change is known but not its content: stale until a full reload succeeds.
      this.fresh = false
      setTimeout(() => void this.reload(), 200).unref()
    }
  }

  dispose(): void {
    this.unwatch()
  }
}

const shared = new WeakMap<Store, StoreApps>()

export async function storeAppsOf(store: Store): Promise<StoreApps> {
  let s = shared.get(store)
  if (!s) {
    s = new StoreApps(store)
    shared.set(store, s)
    await s.reload()
  } else if (!s.live) await s.reload()
  return s
}

// File apps first (a store app never shadows one), then the store's.
export function appDirectory(files: AppIndex, store: StoreApps): AppDirectory {
  const pick = (mine: App | undefined, key: string, theirs: (i: AppIndex) => Map<string, App>): Lookup => {
    if (mine) return mine
    if (!store.live) return 'unavailable'
    const a = theirs(store.current).get(key)
    return a && !files.byName.has(a.name) ? a : null
  }
  return {
    byName: (n) => pick(files.byName.get(n), n, (i) => i.byName),
    byKeyId: (k) => pick(files.byKeyId.get(k), k, (i) => i.byKeyId),
    byApiKey: (h) => pick(files.byApiKey.get(h), h, (i) => i.byApiKey),
    byCert: (h) => pick(files.byCert.get(h), h, (i) => i.byCert),
    bySubject: (s) => pick(files.bySubject.get(s), s, (i) => i.bySubject),
    names: () => ({ file: [...files.byName.keys()], store: [...store.current.byName.keys()].filter((n) => !files.byName.has(n)) }),
  }
}
