// The one Store interface shared state goes through: embedded memory or Redis.
export interface Store {
  readonly kind: 'memory' | 'redis'
  // Resolves when the store answers within its short timeout; rejects with the reason otherwise.
  ping(): Promise<void>
  close(): Promise<void>
}
