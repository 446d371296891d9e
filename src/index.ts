// The library surface, for unit-testing policies in process with `bun test`:
//   const { program } = await buildProgram('./policies', { upstreams: { orders: mock.url } })
//   const res = await program.fetch('http://gateway/api/v1/orders/1')
export { buildProgram, type BuildOptions, type BuildResult } from './compile/build-program.ts'
export { renderDiagnostics, type Diagnostic } from './policy/diagnostics.ts'
export type { Program, RouteRow } from './runtime/program.ts'
export type { Peer } from './runtime/handle.ts'
// The decision trace of Program.explain (a program built with `explain: true`) and the text
// `gateway explain` prints from it.
export { renderTrace, type DecisionTrace, type ForwardedRequest, type StepInfo, type StepOutcome, type StepRecord } from './runtime/decisions.ts'
