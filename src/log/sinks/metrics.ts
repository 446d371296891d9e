// The sinks' part of /metrics, read from the sinks when it is asked for (and, with --workers,
// added up over the serving processes like the gateway's other collected families), and what
// /readyz says about them.
import type { Metrics, Sample } from '../../metrics/metrics.ts'
import type { SinkManager } from './manager.ts'
import { DROP_REASONS, type SinkStatus } from './sink.ts'

type Family = [name: string, type: 'gauge' | 'counter', help: string, value: (s: SinkStatus) => number]

const FAMILIES: Family[] = [
  ['gateway_sink_up', 'gauge', 'Whether the last delivery to the sink succeeded (1) or it is failing (0).', (s) => (s.up ? 1 : 0)],
  ['gateway_sink_queue_entries', 'gauge', 'Entries held in memory for the sink, not yet delivered or spooled.', (s) => s.queued],
  ['gateway_sink_spool_bytes', 'gauge', 'Bytes of undelivered entries in the sink spool on disk.', (s) => s.spoolBytes],
  ['gateway_sink_spool_limit_bytes', 'gauge', 'The cap of the sink spool on disk.', (s) => s.spoolCap],
  ['gateway_sink_spool_full', 'gauge', 'Whether the sink has no room left (1): new entries are dropped.', (s) => (s.spoolFull ? 1 : 0)],
  ['gateway_sink_delivered_total', 'counter', 'Entries the sink delivered.', (s) => s.delivered],
  ['gateway_sink_delivery_errors_total', 'counter', 'Delivery attempts of the sink that failed in whole or in part.', (s) => s.errors],
]

export function registerSinkMetrics(metrics: Metrics, sinks: SinkManager): void {
  for (const [name, type, help, value] of FAMILIES)
    metrics.collect(name, type, help, () => sinks.statuses().map((s): Sample => ({ labels: { sink: s.name }, value: value(s) })))
  metrics.collect('gateway_sink_dropped_total', 'counter', 'Entries the sink dropped, by reason.', () =>
    sinks.statuses().flatMap((s) => DROP_REASONS.map((reason): Sample => ({ labels: { sink: s.name, reason }, value: s.dropped[reason] }))),
  )
}

// Why the gateway is not ready because of its sinks (null: it is, as far as sinks go).
export function sinkTrouble(statuses: readonly SinkStatus[]): string | null {
  const full = statuses.filter((s) => s.spoolFull)
  if (full.length === 0) return null
  return full.map((s) => `sink ${s.name}: no room left (spool ${s.spoolBytes} of ${s.spoolCap} bytes); new entries are dropped`).join('; ')
}
