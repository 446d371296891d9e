// Where a sink's batches go. A transport answers for every line it was given, in order: `ok`
// (delivered, or already there), `retry` (a failure that may pass: the line is sent again
// later) or `rejected` (the receiver refuses it for good: dropped and counted). A transport
// that throws failed the whole batch (every line is retried).
export type Outcome = 'ok' | 'retry' | 'rejected'

export interface Batch {
  lines: readonly string[] // the entries as JSON
  ids: readonly string[] // their request ids: the idempotency key
}

export interface Transport {
  readonly describe: string // where it writes, for events
  deliver(batch: Batch): Promise<Outcome[]>
  // SIGUSR1: a file sink opens its path again (after logrotate moved it).
  reopen?(): void
  close(): Promise<void> | void
}
