// The forms `--redis` accepts, read without loading ioredis (the CLI validates with this):
//   redis://[[user]:password@]host[:port][/db]   rediss://…   one Redis, as ioredis reads it
//   redis+cluster://[[user]:password@]host:port[,host:port…]    a Redis Cluster: seed nodes,
//     the rest is discovered; the password is every node's
//   redis+sentinel://[[user]:password@]host:port[,host:port…]/master-name    the master that
//     the Sentinels name; the password is the master's (Sentinels without a password)
// Ports default to 6379 (nodes) and 26379 (Sentinels). TLS is for the single form only.

export interface HostPort {
  host: string
  port: number
}

export type RedisTarget =
  | { mode: 'single'; url: string }
  | { mode: 'cluster'; nodes: HostPort[]; username?: string; password?: string }
  | { mode: 'sentinel'; sentinels: HostPort[]; name: string; username?: string; password?: string }

export const REDIS_URL_FORMS = 'redis://, rediss://, redis+cluster://host:port,… or redis+sentinel://host:port,…/master'

// The target of `url`, or what is wrong with it (one line).
export function parseRedisUrl(url: string): RedisTarget | string {
  if (/^rediss?:\/\/\S+$/.test(url)) return { mode: 'single', url }
  const m = /^redis\+(cluster|sentinel):\/\/(?:([^@/]*)@)?([^/?#@]+)(?:\/([^/?#]*))?$/.exec(url)
  if (!m) return `--redis must be a ${REDIS_URL_FORMS} URL`
  const [, mode, userinfo, hostList, path = ''] = m
  const defaultPort = mode === 'cluster' ? 6379 : 26379
  const hosts: HostPort[] = []
  for (const part of hostList!.split(',')) {
    const hp = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+))(?::(\d{1,5}))?$/.exec(part)
    const port = hp?.[3] === undefined ? defaultPort : Number(hp[3])
    if (!hp || port < 1 || port > 65535) return `--redis: '${part}' is not host:port`
    hosts.push({ host: hp[1] ?? hp[2]!, port })
  }
  let username: string | undefined
  let password: string | undefined
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':')
    try {
      username = decodeURIComponent(colon === -1 ? userinfo : userinfo.slice(0, colon)) || undefined
      password = colon === -1 ? undefined : decodeURIComponent(userinfo.slice(colon + 1)) || undefined
    } catch {
      return '--redis: the user or password is not percent-encoded properly'
    }
  }
  const auth = { ...(username ? { username } : {}), ...(password ? { password } : {}) }
  if (mode === 'cluster') {
    if (path !== '') return '--redis: a Redis Cluster has no database number (redis+cluster://host:port,…)'
    return { mode: 'cluster', nodes: hosts, ...auth }
  }
  if (path === '') return '--redis: redis+sentinel:// needs the master name as its path (redis+sentinel://host:port,…/mymaster)'
  if (!/^[\w.-]+$/.test(path)) return `--redis: '${path}' is not a Sentinel master name (letters, digits, '_', '.', '-')`
  return { mode: 'sentinel', sentinels: hosts, name: path, ...auth }
}
