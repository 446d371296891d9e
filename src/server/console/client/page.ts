// One view of the console: it fills <main> and returns what stops its timers and streams when
// the user goes elsewhere.
import type { Elem } from './dom.ts'

export interface Page {
  title: string
  render(main: Elem, params: URLSearchParams): (() => void) | void
}
