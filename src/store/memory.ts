import type { Store } from './store.ts'

export function memoryStore(): Store {
  return { kind: 'memory', ping: async () => {}, close: async () => {} }
}
