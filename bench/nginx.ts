// nginx as a reference proxy: proxy_pass with upstream keepalive, from a temporary config.
import { existsSync, rmSync } from 'node:fs'
import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Subprocess } from 'bun'
import { spawnChild } from './children.ts'

export function findNginx(): string | null {
  return Bun.which('nginx') ?? (existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : null)
}

function config(dir: string, port: number, upstream: URL): string {
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${join(dir, t)};`)
  return `# Written by bench/nginx.ts
worker_processes 1;
daemon off;
error_log ${join(dir, 'error.log')} warn;
pid ${join(dir, 'nginx.pid')};
events { worker_connections 1024; }
http {
  access_log off;
${temp.join('\n')}
  upstream bench_upstream {
    server ${upstream.host};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`
}

async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) })
    await res.arrayBuffer()
    return res.ok
  } catch {
    return false
  }
}

/**
 * Starts nginx (with `prefix` before it, e.g. taskset) and resolves once `probePath`
 * answers 2xx through it. On failure, rejects with the tail of its error log.
 * No `user` line: started as root, its worker runs as nobody, which is fine here (a
 * 200-byte answer never touches the temp paths).
 */
export async function startNginx(
  binary: string,
  prefix: string[],
  port: number,
  upstream: string,
  probePath: string,
  timeoutMs: number,
): Promise<Subprocess> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-bench-nginx-'))
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  const conf = join(dir, 'nginx.conf')
  await writeFile(conf, config(dir, port, new URL(upstream)))
  const child = spawnChild([...prefix, binary, '-p', dir, '-c', conf, '-e', join(dir, 'error.log')], dir)
  void new Response(child.stdout).arrayBuffer()
  void new Response(child.stderr).arrayBuffer()
  const deadline = performance.now() + timeoutMs
  while (performance.now() < deadline && child.exitCode === null) {
    if (await answers(`http://127.0.0.1:${port}${probePath}`)) return child
    await Bun.sleep(100)
  }
  child.kill('SIGKILL')
  const log = await readFile(join(dir, 'error.log'), 'utf8').catch(() => '')
  const why = child.exitCode === null ? `not answering within ${timeoutMs} ms` : `exited with ${child.exitCode}`
  throw new Error(`nginx ${why}; error log:\n  ${log.trim().split('\n').slice(-10).join('\n  ')}`)
}
