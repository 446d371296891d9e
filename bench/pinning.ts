// CPU pinning with taskset: the upstream and the load generator on CPU 0, the proxy under
// test on CPU 1 (gateway workers on CPUs 1…N when there are enough cores).
import { cpus } from 'node:os'

export interface Pinning {
  side: string[] // prefix for the upstream and the load generator
  proxy: (processes?: number) => string[] // prefix for the proxy under test
  describe: (workers: number) => string
}

export function choosePinning(wanted: boolean): Pinning {
  const taskset = Bun.which('taskset')
  const cores = cpus().length
  const why = !wanted ? '--no-pin' : !taskset ? 'taskset not found' : cores < 2 ? 'fewer than 2 cores' : null
  if (why || !taskset) return { side: [], proxy: () => [], describe: () => `pinning: none (${why}); everything shares the cores` }
  // The bench itself (which drains the gateway's access log) stays off the proxy's core too.
  Bun.spawnSync([taskset, '-p', '-c', '0', String(process.pid)], { stdout: 'ignore', stderr: 'ignore' })
  const proxyCpus = (n: number) => (Math.min(n, cores - 1) > 1 ? `1-${Math.min(n, cores - 1)}` : '1')
  return {
    side: [taskset, '-c', '0'],
    proxy: (processes = 1) => [taskset, '-c', proxyCpus(processes)],
    describe: (workers) =>
      `pinning (${taskset}): upstream, load generator and this script on CPU 0, proxy under test on CPU 1` +
      (workers > 1 ? `, gateway --workers ${workers} on CPU ${proxyCpus(workers)}` : ''),
  }
}
